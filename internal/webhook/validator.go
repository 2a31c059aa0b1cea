package webhook

import (
	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/valuescheck"
)

// DefaultValidator builds a validator giving Helm's exact verdict
// (internal/valuescheck, shared with `chartkind validate`, so the webhook and
// the command line always agree).
func DefaultValidator(c *chart.Chart, schemaOverride []byte) (Validator, error) {
	v, err := valuescheck.New(c, schemaOverride)
	if err != nil {
		return nil, err
	}
	return v, nil
}
