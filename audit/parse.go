package audit

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf8"
)

// ParseLine parses one record line as MarshalLine writes it, strictly: the
// keys in their fixed order and none other, version 1, canonical strings,
// integers and time, sorted detail keys, and nothing before or after (no
// whitespace, no newline). Any other bytes, even ones that decode to the same
// record, are an error wrapping ErrMalformedRecord: a leaf has one encoding.
func ParseLine(line []byte) (Record, error) {
	var r Record
	if _, err := scanLine(line, &r); err != nil {
		return Record{}, err
	}
	if err := r.validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}

// checkLine applies ParseLine's checks without building a Record, for the
// verifier's hot loop, and returns the index and the tenant's bytes.
func checkLine(line []byte) (index int64, tenant []byte, err error) {
	var f lineFields
	if f, err = scanLine(line, nil); err != nil {
		return 0, nil, err
	}
	switch {
	case !validTenant(f.tenant):
		return 0, nil, malformed("tenant %q is not a valid tenant id", f.tenant)
	case len(f.actor) == 0:
		return 0, nil, malformed("no actor")
	case !isWord(string(f.action)): // no allocation: the conversion does not escape
		return 0, nil, malformed("action %q is not a word of a-z and '_'", f.action)
	}
	switch string(f.outcome) {
	case OutcomeOK, OutcomeDenied, OutcomeFailed:
	default:
		return 0, nil, malformed("outcome %q is none of ok, denied, failed", f.outcome)
	}
	return f.index, f.tenant, nil
}

// validTenant is eventvault.ValidateTenant's rule on bytes:
// ^[a-z0-9][a-z0-9_-]{0,62}$.
func validTenant(b []byte) bool {
	if string(b) == DeploymentTenant {
		return true
	}
	if len(b) < 1 || len(b) > 63 {
		return false
	}
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '_' || c == '-')) {
			return false
		}
	}
	return true
}

// lineFields are the fields scanLine checks beyond the syntax.
type lineFields struct {
	index                          int64
	tenant, actor, action, outcome []byte
}

// scanLine reads a canonical record line, filling r when it is not nil,
// and checks everything but the field rules validate (and checkLine) apply.
func scanLine(line []byte, r *Record) (lineFields, error) {
	p := lineParser{b: line}
	var f lineFields
	p.literal(`{"version":`)
	if p.err == nil && !bytes.HasPrefix(p.b[p.i:], []byte(`1,`)) {
		return f, malformed("version is not %d", RecordVersion)
	}
	p.literal(`1,"tenant":`)
	f.tenant = p.str()
	p.literal(`,"index":`)
	f.index = p.integer()
	p.literal(`,"time":`)
	ts := p.str()
	p.literal(`,"actor":`)
	f.actor = p.str()
	p.literal(`,"action":`)
	f.action = p.str()
	p.literal(`,"resource":`)
	resource := p.str()
	p.literal(`,"outcome":`)
	f.outcome = p.str()
	p.literal(`,"request_id":`)
	requestID := p.str()
	p.literal(`,"detail":{`)
	var prev []byte
	n := 0
	for p.err == nil && p.peek() != '}' {
		if n > 0 {
			p.literal(",")
		}
		k := p.str()
		p.literal(":")
		var v any
		if p.peek() == '"' {
			s := p.str()
			if len(s) > maxField {
				p.fail("detail value too long")
			}
			if r != nil {
				v = string(s)
			}
		} else {
			v = p.integer()
		}
		if p.err != nil {
			break
		}
		if n > 0 && bytes.Compare(k, prev) <= 0 {
			return f, malformed("detail keys are not sorted and unique at %q", k)
		}
		if !isDetailKey(string(k)) {
			return f, malformed("detail key %q is not 1 to 64 characters of a-z, 0-9 and '_'", k)
		}
		if n++; n > MaxDetail {
			return f, malformed("more than %d detail entries", MaxDetail)
		}
		if r != nil {
			if r.Detail == nil {
				r.Detail = make(map[string]any)
			}
			r.Detail[string(k)] = v
		}
		prev = k
	}
	p.literal("}}")
	if p.err != nil {
		return f, p.err
	}
	if p.i != len(p.b) {
		return f, malformed("bytes after the record")
	}
	if f.index < 0 {
		return f, malformed("negative index")
	}
	for _, s := range [][]byte{f.actor, resource, requestID} {
		if len(s) > maxField {
			return f, malformed("a field is longer than %d bytes", maxField)
		}
	}
	// The layout has fixed width but for the hour, so the length and a
	// successful parse make the time canonical.
	t, err := time.Parse(timeLayout, string(ts))
	if err != nil || len(ts) != len(timeLayout) || t.Year() < 1 {
		return f, malformed("time %q is not RFC 3339 UTC with six fractional digits", ts)
	}
	if r != nil {
		*r = Record{Version: RecordVersion, Tenant: string(f.tenant), Index: f.index, Time: t, Actor: string(f.actor),
			Action: string(f.action), Resource: string(resource), Outcome: string(f.outcome), RequestID: string(requestID), Detail: r.Detail}
	}
	return f, nil
}

// lineParser reads the canonical encoding; the first error sticks.
type lineParser struct {
	b   []byte
	i   int
	err error
}

func (p *lineParser) fail(what string) {
	if p.err == nil {
		p.err = malformed("%s at byte %d", what, p.i)
	}
}

func (p *lineParser) peek() byte {
	if p.err != nil || p.i >= len(p.b) {
		p.fail("unexpected end")
		return 0
	}
	return p.b[p.i]
}

func (p *lineParser) literal(s string) {
	if p.err != nil {
		return
	}
	if !bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.fail("expected " + strconv.Quote(s))
		return
	}
	p.i += len(s)
}

// integer reads a canonical decimal integer: no leading zeros, no "-0", no
// '+', no fraction or exponent.
func (p *lineParser) integer() int64 {
	if p.err != nil {
		return 0
	}
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		p.i++
	}
	s := string(p.b[start:p.i])
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || p.i == digits || strconv.FormatInt(n, 10) != s {
		p.fail("non-canonical integer")
		return 0
	}
	return n
}

// str reads a canonical JSON string (see appendString) and returns its
// decoded bytes (a slice of the line when it holds no escape).
func (p *lineParser) str() []byte {
	if p.err != nil {
		return nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		p.fail("expected a string")
		return nil
	}
	p.i++
	start := p.i
	escaped := false
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			p.fail("unescaped control character")
			return nil
		}
		if c == '\\' {
			escaped = true
			p.i++
		}
		p.i++
	}
	if p.i >= len(p.b) {
		p.fail("unterminated string")
		return nil
	}
	raw := p.b[start:p.i]
	p.i++ // closing quote
	if !escaped {
		if !utf8.Valid(raw) {
			p.fail("string is not UTF-8")
			return nil
		}
		return raw
	}
	out := make([]byte, 0, len(raw))
	for j := 0; j < len(raw); j++ {
		c := raw[j]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		j++
		switch raw[j] {
		case '"', '\\':
			out = append(out, raw[j])
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			// Only \u00xx for a control character without a short form.
			if j+4 >= len(raw) || raw[j+1] != '0' || raw[j+2] != '0' {
				p.fail("non-canonical escape")
				return nil
			}
			hi, lo := bytes.IndexByte([]byte(hexDigits), raw[j+3]), bytes.IndexByte([]byte(hexDigits), raw[j+4])
			v := byte(hi<<4 | lo)
			if hi < 0 || lo < 0 || hi > 1 || v == '\n' || v == '\r' || v == '\t' {
				p.fail("non-canonical escape")
				return nil
			}
			out = append(out, v)
			j += 4
		default:
			p.fail("non-canonical escape")
			return nil
		}
	}
	if !utf8.Valid(out) {
		p.fail("string is not UTF-8")
		return nil
	}
	return out
}
