package policies

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/eventvault/eventvault"
)

// cedar-go's parse errors, as of v1.9: the parser's
// `parse error at <input>:L:C "<token>": <reason>`, where the token is the
// one after the culprit (the parser reports once it has moved past it),
// and the scanner's `<input>:L:C: <reason>`, at the culprit.
var (
	parserError  = regexp.MustCompile(`^parse error at [^ ]*:(\d+):(\d+) ("(?:[^"\\]|\\.)*"): (.*)$`)
	scannerError = regexp.MustCompile(`^[^ ]*:(\d+):(\d+): (.*)$`)
	exactError   = regexp.MustCompile(`^(?:exact got (.*)|got (.*)) want (.*)$`)
)

// parserReasons turn the parser's reasons into what a person writing the
// policy was expected to write.
var parserReasons = map[string]string{
	"expected ident":                     "expected a name",
	"expected ident or reserved keyword": "expected an annotation name after @",
	"expected ident after dot":           "expected an attribute name after '.'",
	"expected ident or string":           "expected a name or a string in double quotes",
	"expected string":                    "expected a string in double quotes",
	"expected string literal":            "expected a string in double quotes",
	"unexpected token":                   "unexpected token",
	"invalid primary":                    "expected a value (a literal, an entity such as Stream::\"order-1\", principal, action, resource or context)",
}

var scannerReasons = map[string]string{
	"literal not terminated": "a string is not closed with '\"'",
	"invalid char escape":    "a string holds an invalid escape after '\\'",
}

// describeParseError turns cedar-go's error for body into a sentence a
// person can act on, keeping the line and column: "expected ')' at line
// 1, column 36, where the policy ends" for `permit (principal, action,
// resource`. A reason it does not know is kept as cedar-go words it.
func describeParseError(err error, body string) string {
	msg := strings.TrimPrefix(err.Error(), "parser error: ")
	if m := parserError.FindStringSubmatch(msg); m != nil {
		line, col := atoi(m[1]), atoi(m[2])
		tok, uerr := strconv.Unquote(m[3])
		if uerr != nil {
			tok = m[3]
		}
		return describeParserReason(m[4], tok, body, line, col)
	}
	if m := scannerError.FindStringSubmatch(msg); m != nil {
		reason, ok := scannerReasons[m[3]]
		if !ok {
			reason = m[3]
		}
		return fmt.Sprintf("%s at line %s, column %s", eventvault.Truncate(reason, 200), m[1], m[2])
	}
	if strings.Contains(msg, "strconv.ParseInt") && strings.Contains(msg, "out of range") {
		return fmt.Sprintf("an integer is out of range: Cedar's integers are 64-bit, from %d to %d", int64(-1<<63), int64(1<<63-1))
	}
	return eventvault.Truncate(msg, 200)
}

func describeParserReason(reason, tok, body string, line, col int) string {
	where := fmt.Sprintf("at line %d, column %d", line, col)
	if tok == "" {
		where += ", where the policy ends"
	} else {
		where = fmt.Sprintf("just before %s %s", quoteToken(tok), where)
	}
	if m := exactError.FindStringSubmatch(reason); m != nil {
		got, want := m[1]+m[2], m[3]
		if got == "" {
			return fmt.Sprintf("expected %s at line %d, column %d, where the policy ends", quoteToken(want), line, col)
		}
		l, c := line, col // "got X want ," is reported at X itself
		if strings.HasPrefix(reason, "exact ") {
			l, c = findBefore(body, got, line, col)
		}
		return fmt.Sprintf("expected %s at line %d, column %d, found %s", quoteToken(want), l, c, quoteToken(got))
	}
	if effect, ok := strings.CutPrefix(reason, "unexpected effect: "); ok {
		l, c := findBefore(body, effect, line, col)
		return fmt.Sprintf("a statement starts with permit or forbid, found %s at line %d, column %d", quoteToken(effect), l, c)
	}
	if r, ok := parserReasons[reason]; ok {
		reason = r
	}
	return fmt.Sprintf("%s %s", eventvault.Truncate(reason, 200), where)
}

// quoteToken quotes a token of the policy for a sentence, cut short.
func quoteToken(tok string) string {
	return "'" + eventvault.Truncate(tok, 40) + "'"
}

// findBefore returns the line and column (1-based, in characters, as
// cedar-go counts them) where the last occurrence of tok starts before
// line:col in body; line and col themselves if there is none.
func findBefore(body, tok string, line, col int) (int, int) {
	off := offsetOf(body, line, col)
	i := strings.LastIndex(body[:off], tok)
	if i < 0 {
		return line, col
	}
	start := strings.LastIndexByte(body[:i], '\n') + 1
	return strings.Count(body[:i], "\n") + 1, utf8.RuneCountInString(body[start:i]) + 1
}

// offsetOf is the byte offset in body of line:col, or len(body) past it.
func offsetOf(body string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(body[off:], '\n')
		if i < 0 {
			return len(body)
		}
		off += i + 1
	}
	for c := 1; c < col && off < len(body); c++ {
		_, w := utf8.DecodeRuneInString(body[off:])
		off += w
	}
	return off
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
