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
	p := lineParser{b: line}
	var r Record
	r.Version = RecordVersion
	p.literal(`{"version":`)
	if p.err == nil && !bytes.HasPrefix(p.b[p.i:], []byte(`1,`)) {
		return Record{}, malformed("version is not %d", RecordVersion)
	}
	p.literal(`1,"tenant":`)
	r.Tenant = p.str()
	p.literal(`,"index":`)
	r.Index = p.integer()
	p.literal(`,"time":`)
	ts := p.str()
	p.literal(`,"actor":`)
	r.Actor = p.str()
	p.literal(`,"action":`)
	r.Action = p.str()
	p.literal(`,"resource":`)
	r.Resource = p.str()
	p.literal(`,"outcome":`)
	r.Outcome = p.str()
	p.literal(`,"request_id":`)
	r.RequestID = p.str()
	p.literal(`,"detail":{`)
	prev := ""
	for p.err == nil && p.peek() != '}' {
		if len(r.Detail) > 0 {
			p.literal(",")
		}
		k := p.str()
		p.literal(":")
		var v any
		if p.peek() == '"' {
			v = p.str()
		} else {
			v = p.integer()
		}
		if p.err != nil {
			break
		}
		if r.Detail != nil && k <= prev {
			return Record{}, malformed("detail keys are not sorted and unique at %q", k)
		}
		if r.Detail == nil {
			r.Detail = make(map[string]any)
		}
		r.Detail[k], prev = v, k
	}
	p.literal("}}")
	if p.err != nil {
		return Record{}, p.err
	}
	if p.i != len(p.b) {
		return Record{}, malformed("bytes after the record")
	}
	if r.Index < 0 {
		return Record{}, malformed("negative index")
	}
	t, err := time.Parse(timeLayout, ts)
	if err != nil || t.Format(timeLayout) != ts {
		return Record{}, malformed("time %q is not RFC 3339 UTC with six fractional digits", ts)
	}
	r.Time = t
	if err := r.validate(); err != nil {
		return Record{}, err
	}
	return r, nil
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

// str reads a canonical JSON string (see appendString).
func (p *lineParser) str() string {
	if p.err != nil {
		return ""
	}
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		p.fail("expected a string")
		return ""
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
			return ""
		}
		if c == '\\' {
			escaped = true
			p.i++
		}
		p.i++
	}
	if p.i >= len(p.b) {
		p.fail("unterminated string")
		return ""
	}
	raw := p.b[start:p.i]
	p.i++ // closing quote
	if !escaped {
		if !utf8.Valid(raw) {
			p.fail("string is not UTF-8")
			return ""
		}
		return string(raw)
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
				return ""
			}
			hi, lo := bytes.IndexByte([]byte(hexDigits), raw[j+3]), bytes.IndexByte([]byte(hexDigits), raw[j+4])
			v := byte(hi<<4 | lo)
			if hi < 0 || lo < 0 || hi > 1 || v == '\n' || v == '\r' || v == '\t' {
				p.fail("non-canonical escape")
				return ""
			}
			out = append(out, v)
			j += 4
		default:
			p.fail("non-canonical escape")
			return ""
		}
	}
	if !utf8.Valid(out) {
		p.fail("string is not UTF-8")
		return ""
	}
	return string(out)
}
