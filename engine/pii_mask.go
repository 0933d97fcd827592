package engine

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/eventvault/eventvault"
)

// maskValue returns the masked form of a personal value (JSON) as a JSON
// string, by the rule of its class (docs/pii.md):
//
//	email      first character of the local part, "***@", the domain:
//	           "jane.doe@example.com" → "j***@example.com"
//	phone      "***" and the last 4 digits: "+44 20 7946 0958" → "***0958"
//	           (fewer than 5 digits: "***")
//	address    "***"
//	free_text  "***"
//	no class   "***"
//
// A value that is not a JSON string masks to "***" whatever its class.
func maskValue(class eventvault.PIIClass, value []byte) []byte {
	var s string
	if json.Unmarshal(value, &s) != nil {
		return []byte(`"***"`)
	}
	masked := "***"
	switch class {
	case eventvault.PIIEmail:
		local, domain, ok := strings.Cut(s, "@")
		if ok && local != "" && domain != "" {
			r, _ := utf8.DecodeRuneInString(local)
			masked = string(r) + "***@" + domain
		}
	case eventvault.PIIPhone:
		var digits []byte
		for i := 0; i < len(s); i++ {
			if s[i] >= '0' && s[i] <= '9' {
				digits = append(digits, s[i])
			}
		}
		if len(digits) > 4 {
			masked = "***" + string(digits[len(digits)-4:])
		}
	}
	out, _ := json.Marshal(masked) // a string always marshals
	return out
}
