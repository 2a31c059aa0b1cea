package definition

import (
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

// ReleaseProblems checks the CEL expressions of a definition's release
// settings the way helm-controller will read them, so that a mistake is
// reported before any HelmRelease carries it (helm-controller would stall
// every release of the kind with InvalidCELExpression). Health check
// expressions are parsed, as helm-controller parses them; dependency
// readyExpr expressions are compiled with its variables self and dep and must
// be boolean. Messages name the field.
func ReleaseProblems(def *v1alpha1.ApplicationDefinition) []string {
	var problems []string
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(), cel.EagerlyValidateDeclarations(true), cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true), cel.OptionalTypes(), ext.Strings(), ext.Sets(), ext.Encoders(),
		cel.Variable("self", cel.ObjectType("google.protobuf.Struct")),
		cel.Variable("dep", cel.ObjectType("google.protobuf.Struct")),
	)
	if err != nil {
		return []string{"CEL environment: " + err.Error()}
	}
	for i, h := range def.Spec.Release.HealthCheckExprs {
		// In a fixed order: the message becomes a condition, which must not
		// change (and be written) from one reconcile to the next.
		for _, fe := range [][2]string{{"current", h.Current}, {"inProgress", h.InProgress}, {"failed", h.Failed}} {
			field, expr := fe[0], fe[1]
			if expr == "" {
				continue
			}
			if _, iss := env.Parse(expr); iss != nil && iss.Err() != nil {
				problems = append(problems, fmt.Sprintf("spec.release.healthCheckExprs[%d].%s: %v", i, field, iss.Err()))
			}
		}
	}
	for i, d := range def.Spec.Release.DependsOn {
		if d.ReadyExpr == "" {
			continue
		}
		ast, iss := env.Compile(d.ReadyExpr)
		switch {
		case iss != nil && iss.Err() != nil:
			problems = append(problems, fmt.Sprintf("spec.release.dependsOn[%d].readyExpr: %v", i, iss.Err()))
		case ast.OutputType() != cel.BoolType:
			problems = append(problems, fmt.Sprintf("spec.release.dependsOn[%d].readyExpr: must be boolean, is %s", i, ast.OutputType()))
		}
	}
	return problems
}
