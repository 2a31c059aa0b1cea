package insight

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Bounds of a release record read: the Secret cannot exceed 1 MiB, and a
// gzip bomb must not make the operator allocate without limit.
const (
	maxRecord      = 1 << 20
	maxReleaseJSON = 32 << 20
)

// ReleaseRecordName is the name of the Secret in which Helm's secret storage
// driver keeps one revision of a release, "sh.helm.release.v1.<name>.v<version>"
// in Helm 3 and 4; exported for callers that watch it or grant access to it.
func ReleaseRecordName(name string, version int) string {
	return fmt.Sprintf("sh.helm.release.v1.%s.v%d", name, version)
}

// readNotes reads info.notes of the latest release of hr. A missing record or
// history gives no notes; a forbidden or undecodable record gives no notes
// and an omission line; only retryable failures are errors.
func readNotes(ctx context.Context, r client.Reader, hr *helmv2.HelmRelease, max int) (notes, omitted string, err error) {
	latest := latestSnapshot(hr.Status.History)
	if latest == nil || latest.Name == "" || latest.Version <= 0 {
		return "", "", nil
	}
	ns := hr.Status.StorageNamespace
	if ns == "" {
		ns = hr.GetStorageNamespace()
	}
	ref := Ref{Namespace: ns, Name: ReleaseRecordName(latest.Name, latest.Version), Kind: "Secret", Version: "v1"}
	var sec corev1.Secret
	if err := r.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return "", "", nil
		}
		_, text, ferr := classify(err, ref)
		if ferr != nil {
			return "", "", fmt.Errorf("reading release notes: %w", ferr)
		}
		return "", "release notes " + ref.String() + ": " + text, nil
	}
	n, err := decodeNotes(sec.Data["release"])
	if err != nil {
		return "", "release notes " + ref.String() + ": " + clean(err.Error()), nil
	}
	return truncate(strings.TrimRight(n, " \t\r\n"), max), "", nil
}

// latestSnapshot is Snapshots.Latest without its side effect: Latest sorts
// the slice in place, which would modify the caller's HelmRelease.
func latestSnapshot(h helmv2.Snapshots) *helmv2.Snapshot {
	var latest *helmv2.Snapshot
	for _, s := range h {
		if s != nil && (latest == nil || s.Version > latest.Version) {
			latest = s
		}
	}
	return latest
}

// decodeNotes extracts info.notes from the "release" value Helm's secret
// driver stores: base64 (StdEncoding) text of a gzip'ed JSON release, or of
// plain JSON for records written before compression (encodeRelease and
// decodeRelease in helm.sh/helm/v3/pkg/storage/driver/util.go; Helm 4 keeps
// the layout and the info.notes field). It streams the JSON and stops at
// "info", which Helm writes second, so the chart and manifest that follow
// are neither decompressed nor buffered.
func decodeNotes(data []byte) (string, error) {
	in, err := openRecord(data)
	if err != nil {
		return "", err
	}
	defer in.Close()
	dec := json.NewDecoder(in)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", fmt.Errorf("decoding release: not a JSON object (%v)", err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("decoding release: %w", err)
		}
		if key, _ := tok.(string); key == "info" {
			var info struct {
				Notes string `json:"notes"`
			}
			if err := dec.Decode(&info); err != nil {
				return "", fmt.Errorf("decoding release info: %w", err)
			}
			return info.Notes, nil
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", fmt.Errorf("decoding release: %w", err)
		}
	}
	return "", nil
}

// openRecord returns the JSON of a release record's "release" value: base64
// (StdEncoding) text of gzip'ed JSON, or of plain JSON for records written
// before compression. Reads are bounded by maxReleaseJSON.
func openRecord(data []byte) (io.ReadCloser, error) {
	if len(data) == 0 {
		return nil, errors.New("record has no release data")
	}
	if len(data) > maxRecord {
		return nil, fmt.Errorf("record larger than %d bytes", maxRecord)
	}
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, err := base64.StdEncoding.Decode(raw, data)
	if err != nil {
		return nil, fmt.Errorf("decoding base64: %w", err)
	}
	raw = raw[:n]
	if !bytes.HasPrefix(raw, []byte{0x1f, 0x8b, 0x08}) {
		return io.NopCloser(io.LimitReader(bytes.NewReader(raw), maxReleaseJSON)), nil
	}
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(gz, maxReleaseJSON), gz}, nil
}
