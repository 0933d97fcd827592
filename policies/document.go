package policies

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"

	"github.com/eventvault/eventvault"
)

// Schema is the Cedar schema (in Cedar's schema syntax) that every
// document is validated against in strict mode.
//
//go:embed schema.cedarschema
var Schema string

// Limits of a document.
const (
	MaxDocumentBytes      = 64 << 10
	MaxStatements         = 200
	MaxDocumentNameLength = 64
	// MaxNesting bounds how deep (), [] and {} nest in a document, which
	// bounds the cost of parsing and evaluating it.
	MaxNesting = 32
)

// nesting returns the deepest nesting of (), [] and {} in body, outside
// string literals and // comments, up to MaxNesting+1, and the line where
// it went past MaxNesting.
func nesting(body string) (line, deepest int) {
	depth, line := 0, 1
	inString, escaped, inComment := false, false, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\n':
			line++
			inComment = false
		case inComment:
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '/' && i+1 < len(body) && body[i+1] == '/':
			inComment = true
		case c == '(' || c == '[' || c == '{':
			depth++
			if depth > deepest {
				deepest = depth
			}
			if depth > MaxNesting {
				return line, depth
			}
		case c == ')' || c == ']' || c == '}':
			depth--
		}
	}
	return line, deepest
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// ValidateName returns EINVALID unless name is 1 to MaxDocumentNameLength
// lower-case letters, digits, '_', '.' and '-', starting with a letter or
// digit ("app", "read-only.analyst").
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > MaxDocumentNameLength || !nameRE.MatchString(name) {
		return eventvault.Errorf(eventvault.EINVALID, "a policy name is 1 to %d lower-case letters, digits, '_', '.' and '-', starting with a letter or digit, such as \"app\" or \"dpo\"", MaxDocumentNameLength)
	}
	return nil
}

// Document is a named policy document, parsed and validated: a Cedar
// policy set of one or more statements.
type Document struct {
	Name    string
	Version int64
	// statements in source order, each with its id: the @id annotation
	// when it has one, else its 0-based index.
	statements []statement
}

type statement struct {
	id     string
	policy *cedar.Policy
}

var (
	validatorOnce sync.Once
	validator     *validate.Validator
	validatorErr  error
)

func schemaValidator() (*validate.Validator, error) {
	validatorOnce.Do(func() {
		var s schema.Schema
		s.SetFilename("schema.cedarschema")
		if err := s.UnmarshalCedar([]byte(Schema)); err != nil {
			validatorErr = fmt.Errorf("parse the policy schema: %w", err)
			return
		}
		rs, err := s.Resolve()
		if err != nil {
			validatorErr = fmt.Errorf("resolve the policy schema: %w", err)
			return
		}
		validator = validate.New(rs, validate.WithStrict())
	})
	return validator, validatorErr
}

// Parse parses body as policy document name and validates it against
// Schema. Errors: EINVALID naming the line and the reason for a document
// that does not parse, holds no statement or too many, repeats an @id, or
// does not validate (an unknown action, entity type or attribute, or one
// used where it does not apply, such as context.event_type on read).
func Parse(name, body string) (*Document, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if len(body) > MaxDocumentBytes {
		return nil, eventvault.Errorf(eventvault.EINVALID, "policy %s is %d bytes long; the limit is %d", name, len(body), MaxDocumentBytes)
	}
	if !utf8.ValidString(body) || strings.ContainsRune(body, 0) {
		return nil, eventvault.Errorf(eventvault.EINVALID, "policy %s must be UTF-8 text without NUL characters", name)
	}
	if line, depth := nesting(body); depth > MaxNesting {
		return nil, eventvault.Errorf(eventvault.EINVALID, "policy %s, line %d: brackets nest %d deep or more; the limit is %d", name, line, depth, MaxNesting)
	}
	list, err := cedar.NewPolicyListFromBytes(name+".cedar", []byte(body))
	if err != nil {
		return nil, eventvault.Errorf(eventvault.EINVALID, "policy %s does not parse: %s", name, describeParseError(err, body))
	}
	if len(list) == 0 {
		return nil, eventvault.Errorf(eventvault.EINVALID, "policy %s holds no statement: write at least one permit or forbid, such as permit (principal, action == Action::\"read\", resource);", name)
	}
	if len(list) > MaxStatements {
		return nil, eventvault.Errorf(eventvault.EINVALID, "policy %s holds %d statements; the limit is %d", name, len(list), MaxStatements)
	}
	v, err := schemaValidator()
	if err != nil {
		return nil, err
	}
	d := &Document{Name: name}
	seen := map[string]bool{}
	for i, p := range list {
		line := p.Position().Line
		id := strconv.Itoa(i)
		if a, ok := p.Annotations()["id"]; ok {
			id = string(a)
			if id == "" || strings.ContainsAny(id, "#,") {
				return nil, eventvault.Errorf(eventvault.EINVALID, "policy %s, line %d: an @id must be non-empty and hold neither '#' nor ','", name, line)
			}
		}
		if seen[id] {
			return nil, eventvault.Errorf(eventvault.EINVALID, "policy %s, line %d: statement id %q is used twice", name, line, eventvault.Truncate(id, 40))
		}
		seen[id] = true
		if err := v.Policy(id, (*xast.Policy)(p.AST())); err != nil {
			return nil, eventvault.Errorf(eventvault.EINVALID, "policy %s, line %d: statement %s#%s does not validate against the schema (GET /v1/policy-schema shows it): %s", name, line, name, eventvault.Truncate(id, 40), describeValidationError(err))
		}
		d.statements = append(d.statements, statement{id: id, policy: p})
	}
	return d, nil
}

func describeValidationError(err error) string {
	var parts []string
	for _, e := range flatten(err) {
		s := e.Error()
		if i := strings.Index(s, "`, "); strings.HasPrefix(s, "for policy `") && i > 0 {
			s = s[i+3:]
		}
		if !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	return eventvault.Truncate(strings.Join(parts, "; "), 400)
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	var inner interface{ Unwrap() []error }
	if errors.As(err, &inner) {
		return flatten(inner.(error))
	}
	return []error{err}
}
