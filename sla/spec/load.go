package spec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads, decodes, defaults and validates the spec in file.
func Load(file string) (*Spec, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the SLA spec: %w (pass --spec with the path of a carpoolsla/v1 YAML file)", err)
	}
	return Parse(file, data)
}

// Parse decodes, defaults and validates a spec held in data; file names it
// in messages. On failure the error is a Problems listing everything found.
func Parse(file string, data []byte) (*Spec, error) {
	doc, err := parseNode(file, data)
	if err != nil {
		return nil, err
	}
	idx := newIndex(doc)
	if ps := strictCheck(file, doc, reflect.TypeOf(Spec{}), ""); len(ps) > 0 {
		return nil, ps
	}
	s := Default()
	if err := doc.Decode(&s); err != nil {
		return nil, decodeProblems(file, idx, err)
	}
	s.File = file
	s.fillDefaults()
	if ps := s.validate(idx); len(ps) > 0 {
		return nil, ps
	}
	return &s, nil
}

func parseNode(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			return nil, Problems{{File: file, Message: "the spec is empty; start from deploy/sla.yaml"}}
		}
		return nil, Problems{yamlSyntaxProblem(file, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Problems{{File: file, Line: extra.Line, Column: extra.Column, Message: "the file holds more than one YAML document; keep one spec per file"}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, Problems{{File: file, Message: "the spec is empty; start from deploy/sla.yaml"}}
		}
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, Problems{{File: file, Line: root.Line, Column: root.Column, Message: "the spec must be a YAML mapping with apiVersion: " + APIVersion}}
	}
	return root, nil
}

var lineRe = regexp.MustCompile(`line (\d+):\s*`)

func yamlSyntaxProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Problem{File: file}
	if m := lineRe.FindStringSubmatchIndex(msg); m != nil {
		p.Line, _ = strconv.Atoi(msg[m[2]:m[3]])
		msg = msg[:m[0]] + msg[m[1]:]
	}
	p.Message = "invalid YAML: " + msg
	return p
}

// index maps field paths to the nodes that hold them, for positions.
type index struct {
	nodes  map[string]*yaml.Node // path → value node
	keys   map[string]*yaml.Node // path → key node (mappings only)
	byLine map[int]string        // line → first path whose value starts there
}

func newIndex(root *yaml.Node) *index {
	ix := &index{nodes: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}, byLine: map[int]string{}}
	ix.walk(root, "")
	return ix
}

func (ix *index) walk(n *yaml.Node, path string) {
	ix.nodes[path] = n
	if _, ok := ix.byLine[n.Line]; !ok || n.Kind == yaml.ScalarNode {
		if prev, ok := ix.byLine[n.Line]; !ok || ix.nodes[prev].Kind != yaml.ScalarNode {
			ix.byLine[n.Line] = path
		}
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			ix.keys[p] = k
			ix.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ix.walk(c, fmt.Sprintf("%s[%d]", path, i))
		}
	}
	// Aliases are not followed: positions belong to the anchor, and an
	// alias may refer to a node that contains it.
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// pos returns the position of path, or of its nearest present ancestor.
func (ix *index) pos(path string) (line, col int) {
	for p := path; ; {
		if n, ok := ix.nodes[p]; ok {
			if k, ok := ix.keys[p]; ok && n.Kind != yaml.ScalarNode {
				return k.Line, k.Column
			}
			return n.Line, n.Column
		}
		if p == "" {
			return 0, 0
		}
		p = parentPath(p)
	}
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// maxDepth bounds strictCheck's recursion: the spec is a few levels deep,
// and an alias may point back at a node that contains it.
const maxDepth = 32

// strictCheck reports every mapping key that names no field of t.
func strictCheck(file string, n *yaml.Node, t reflect.Type, path string) Problems {
	return strictCheckDepth(file, n, t, path, 0)
}

func strictCheckDepth(file string, n *yaml.Node, t reflect.Type, path string, depth int) Problems {
	if depth > maxDepth {
		return Problems{{File: file, Line: n.Line, Column: n.Column, Field: path, Message: "the document nests deeper than any spec field; check for a recursive alias"}}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	var ps Problems
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if seen[k.Value] {
				ps = append(ps, Problem{File: file, Line: k.Line, Column: k.Column, Field: p, Message: "the field is set twice; keep one"})
				continue
			}
			seen[k.Value] = true
			ft, ok := fields[k.Value]
			if !ok {
				ps = append(ps, Problem{File: file, Line: k.Line, Column: k.Column, Field: p, Message: unknownFieldMessage(k.Value, path, fields)})
				continue
			}
			ps = append(ps, strictCheckDepth(file, v, ft, p, depth+1)...)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			ps = append(ps, strictCheckDepth(file, c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), depth+1)...)
		}
	}
	return ps
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		out[tag] = f.Type
	}
	return out
}

func unknownFieldMessage(key, parent string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	where := "at the top level"
	if parent != "" {
		where = "in " + parent
	}
	msg := fmt.Sprintf("unknown field %q %s", key, where)
	if best := closest(key, names); best != "" {
		msg += fmt.Sprintf("; did you mean %q?", best)
	} else {
		msg += "; known fields: " + strings.Join(names, ", ")
	}
	return msg
}

// closest returns the name within edit distance 2 of key (case-insensitive), if any.
func closest(key string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(key), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var (
	typeErrRe   = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (.+)$")
	lineOnlyRe  = regexp.MustCompile(`^line (\d+): (.*)$`)
	goTypeNames = map[string]string{
		"float64": "a number", "int": "a whole number", "bool": "true or false", "string": "a string",
		"model.Duration": "a duration such as 300ms, 5s, 2m, 6h or 30d",
	}
)

// decodeProblems turns a yaml.v3 decode error into located problems.
func decodeProblems(file string, ix *index, err error) Problems {
	var le *locatedError
	if errors.As(err, &le) {
		p := Problem{File: file, Line: le.Line, Column: le.Column, Message: le.Msg}
		if path, ok := ix.byLine[le.Line]; ok {
			p.Field = path
		}
		return Problems{p}
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return Problems{{File: file, Message: err.Error()}}
	}
	var ps Problems
	for _, e := range te.Errors {
		p := Problem{File: file, Message: e}
		if m := typeErrRe.FindStringSubmatch(e); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			want := m[4]
			if t, ok := goTypeNames[strings.TrimPrefix(want, "[]")]; ok {
				want = t
				if strings.HasPrefix(m[4], "[]") {
					want = "a list of " + t
				}
			} else if strings.HasPrefix(want, "[]") {
				want = "a list"
			} else if strings.HasPrefix(want, "spec.") {
				want = "a mapping"
			}
			p.Message = fmt.Sprintf("%q is not valid here: expected %s", m[3], want)
		} else if m := lineOnlyRe.FindStringSubmatch(e); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Message = m[2]
			if strings.Contains(m[2], "time: ") || strings.Contains(m[2], "duration") {
				p.Message = m[2] + "; write a duration such as 300ms, 5s, 2m, 6h or 30d"
			}
		}
		if path, ok := ix.byLine[p.Line]; ok {
			p.Field = path
			_, p.Column = ix.nodes[path].Line, ix.nodes[path].Column
		}
		ps = append(ps, p)
	}
	return ps
}
