// Package mapsize gives back the memory of maps that grew in a bulk phase.
// A Go map never shrinks: one that held 10,000 keys while 10,000 objects
// were created keeps the table of 10,000 (about 1 MB for a key of a few
// strings) when it is empty again, for the life of the process. Maps that
// hold work in flight (event times, own writes, recent writes) are empty
// most of the time and full only in bulk phases.
package mapsize

// Min is the peak below which a map is left as it is: its table costs
// less than rebuilding it would save.
const Min = 1024

// Peak is the most entries a map held since it was last rebuilt.
type Peak struct{ n int }

// Shrink returns m, or a new map holding m's entries when m holds an eighth
// or less of its peak and that peak was at least Min. Callers call it after
// each insert (which records the peak) and delete, with the map's lock held,
// and keep what it returns. Rebuilding costs O(len(m)), paid for by the
// seven eighths of the peak deleted before it: amortised O(1) per delete.
func Shrink[K comparable, V any](m map[K]V, p *Peak) map[K]V {
	n := len(m)
	if n > p.n {
		p.n = n
		return m
	}
	if p.n < Min || n > p.n/8 {
		return m
	}
	out := make(map[K]V, n)
	for k, v := range m {
		out[k] = v
	}
	p.n = n
	return out
}
