package schemachange

import (
	"encoding/json"
	"fmt"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/corpus"
	"github.com/chartkind/chartkind/internal/crd"
)

const benchObjects = 1000

// benchSchema is a database chart's schema of the usual shape: nested
// objects, a map, lists of objects, patterns, bounds and a nullable enum (a
// CEL rule).
const benchSchema = `{"type":"object","properties":{
	"replicas":{"type":"integer","minimum":1,"maximum":9},
	"size":{"type":"string","pattern":"^[0-9]+(Mi|Gi|Ti)$"},
	"storageClass":{"type":"string"},
	"version":{"type":"string","enum":["v14","v15","v16","v17"]},
	"tier":{"type":["string","null"],"enum":["small","medium","large",null]},
	"external":{"type":"boolean"},
	"resources":{"type":"object","properties":{"cpu":{"type":["integer","string"]},"memory":{"type":["integer","string"]}}},
	"postgresql":{"type":"object","properties":{"parameters":{"type":"object","properties":{
		"max_connections":{"type":"integer","minimum":1},"shared_buffers":{"type":"string"}}}}},
	"quorum":{"type":"object","properties":{"minSyncReplicas":{"type":"integer"},"maxSyncReplicas":{"type":"integer"}}},
	"users":{"type":"object","additionalProperties":{"type":"object","properties":{
		"password":{"type":"string"},"replication":{"type":"boolean"}}}},
	"databases":{"type":"object","additionalProperties":{"type":"object","properties":{
		"roles":{"type":"object","properties":{"admin":{"type":"array","items":{"type":"string"}},"readonly":{"type":"array","items":{"type":"string"}}}},
		"extensions":{"type":"array","items":{"type":"string"}}}}},
	"backup":{"type":"object","properties":{
		"enabled":{"type":"boolean"},"schedule":{"type":"string"},"retentionPolicy":{"type":"string"},
		"destinationPath":{"type":"string","format":"uri"},"endpointURL":{"type":"string"},
		"s3AccessKey":{"type":"string"},"s3SecretKey":{"type":"string"}}},
	"bootstrap":{"type":"object","properties":{"enabled":{"type":"boolean"},"recoveryTime":{"type":"string"},"oldName":{"type":"string"}}}
}}`

func benchSpec(i int) string {
	return fmt.Sprintf(`{"replicas":%d,"size":"%dGi","storageClass":"replicated","version":"v16","tier":"medium","external":false,
		"resources":{"cpu":"%dm","memory":"%dMi"},
		"postgresql":{"parameters":{"max_connections":%d,"shared_buffers":"256MB"}},
		"quorum":{"minSyncReplicas":0,"maxSyncReplicas":0},
		"users":{"app":{"password":"p%d"},"reporting":{"password":"r%d","replication":false}},
		"databases":{"app":{"roles":{"admin":["app"],"readonly":["reporting"]},"extensions":["hstore","pg_trgm"]}},
		"backup":{"enabled":true,"schedule":"0 2 * * *","retentionPolicy":"30d","destinationPath":"s3://bucket/db-%d/",
			"endpointURL":"http://minio:9000","s3AccessKey":"key","s3SecretKey":"secret"},
		"bootstrap":{"enabled":false}}`, 1+i%3, 10+i%90, 100+i%900, 256+i, 100+i%100, i, i, i)
}

// BenchmarkCheck checks 1,000 objects per operation against a new CRD with a
// Checker built once, next to a baseline measured in the same run:
// json.Marshal of the same 1,000 objects, about what the API server spends
// just to serve them in a List. Compare check to json-marshal as a ratio.
// new-checker is the one-time cost per CRD (schema conversion, CEL compilation).
func BenchmarkCheck(b *testing.B) {
	newCRD := generatedCRD(b, benchSchema, v1alpha1.DefaultsDescribe)
	objects := make([]*unstructured.Unstructured, benchObjects)
	for i := range objects {
		objects[i] = object(b, fmt.Sprintf("db-%d", i), benchSpec(i))
	}
	benchmarkCheck(b, newCRD, objects)
}

// BenchmarkCheckCorpus does the same with a real chart of the corpus: the
// CRD generated from cozystack-redis's schema, and objects whose spec is the
// chart's whole values.yaml (far larger than the overrides objects usually hold).
func BenchmarkCheckCorpus(b *testing.B) {
	var chart corpus.Chart
	for _, c := range corpus.Load(b) {
		if c.Name == "cozystack-redis" {
			chart = c
		}
	}
	if chart.Name == "" {
		b.Fatal("cozystack-redis is not in the corpus")
	}
	newCRD := generatedCRD(b, string(chart.Schema), v1alpha1.DefaultsDescribe)
	j, err := yaml.YAMLToJSON(chart.Values)
	if err != nil {
		b.Fatal(err)
	}
	objects := make([]*unstructured.Unstructured, benchObjects)
	for i := range objects {
		objects[i] = object(b, fmt.Sprintf("redis-%d", i), string(j))
	}
	b.Logf("spec: %d bytes of JSON", len(j))
	benchmarkCheck(b, newCRD, objects)
}

func benchmarkCheck(b *testing.B, newCRD *apiextensionsv1.CustomResourceDefinition, objects []*unstructured.Unstructured) {
	c, err := NewChecker(newCRD, crd.Version)
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range objects {
		if p := c.Check(o); p != nil {
			b.Fatalf("benchmark objects must be valid, so that the whole check runs: %v", p)
		}
	}

	b.Run("json-marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, o := range objects {
				if _, err := json.Marshal(o.Object); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, o := range objects {
				if p := c.Check(o); p != nil {
					b.Fatal(p)
				}
			}
		}
	})
	b.Run("new-checker", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := NewChecker(newCRD, crd.Version); err != nil {
				b.Fatal(err)
			}
		}
	})
}
