package eventvault

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestValidateStream(t *testing.T) {
	good := []StreamName{"order-42", "Order_line-a.b:c-9", "x-1", StreamName("a-" + strings.Repeat("9", MaxStreamNameLength-2))}
	bad := []StreamName{"", "order", "-42", "order-", "42-order", "order 42", "order-4 2", "order/42-1", "ordér-1", "order-\n", StreamName("a-" + strings.Repeat("9", MaxStreamNameLength-1))}
	for _, s := range good {
		if err := ValidateStream(s); err != nil {
			t.Errorf("ValidateStream(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range bad {
		if err := ValidateStream(s); ErrorCode(err) != EINVALID {
			t.Errorf("ValidateStream(%q) = %v, want EINVALID", s, err)
		}
	}
	if c := StreamName("order-42-b").Category(); c != "order" {
		t.Errorf("Category = %q, want order", c)
	}
}

func TestValidateTenantAndType(t *testing.T) {
	for _, tn := range []TenantID{"acme", "a", "acme-eu_1"} {
		if err := ValidateTenant(tn); err != nil {
			t.Errorf("ValidateTenant(%q) = %v", tn, err)
		}
	}
	for _, tn := range []TenantID{"", "Acme", "-acme", "ac me", TenantID(strings.Repeat("a", 64))} {
		if ErrorCode(ValidateTenant(tn)) != EINVALID {
			t.Errorf("ValidateTenant(%q) accepted", tn)
		}
	}
	for _, ty := range []string{"", "1Up", "Order Placed", strings.Repeat("A", MaxEventTypeLength+1)} {
		if ErrorCode(ValidateEventType(ty)) != EINVALID {
			t.Errorf("ValidateEventType(%q) accepted", ty)
		}
	}
	if err := ValidateEventType("order.placed:v2"); err != nil {
		t.Errorf("ValidateEventType = %v", err)
	}
}

func TestExpectedVersionCheck(t *testing.T) {
	cases := []struct {
		v       ExpectedVersion
		current int64
		want    bool
	}{
		{ExpectAny, NoStream, true},
		{ExpectAny, 7, true},
		{ExpectNoStream, NoStream, true},
		{ExpectNoStream, 0, false},
		{ExpectExists, NoStream, false},
		{ExpectExists, 0, true},
		{ExpectPosition(3), 3, true},
		{ExpectPosition(3), 4, false},
		{ExpectPosition(0), NoStream, false},
	}
	for _, c := range cases {
		if got := c.v.Check(c.current); got != c.want {
			t.Errorf("%s.Check(%d) = %v, want %v", c.v, c.current, got, c.want)
		}
	}
	if p, ok := ExpectPosition(5).Position(); !ok || p != 5 {
		t.Errorf("Position() = %d, %v", p, ok)
	}
	if _, ok := ExpectAny.Position(); ok {
		t.Error("ExpectAny has a position")
	}
}

func TestErrorCodesSurviveWrapping(t *testing.T) {
	cause := errors.New("connection reset")
	err := fmt.Errorf("append to order-1: %w", &Error{Code: EUNAVAILABLE, Message: "the store is unreachable", Err: cause})
	if ErrorCode(err) != EUNAVAILABLE || ErrorMessage(err) != "the store is unreachable" || !errors.Is(err, cause) {
		t.Fatalf("code %s message %q is %v", ErrorCode(err), ErrorMessage(err), errors.Is(err, cause))
	}
	plain := errors.New("boom: secret detail")
	if ErrorCode(plain) != EINTERNAL || ErrorMessage(plain) != "Internal error." {
		t.Fatalf("a plain error leaks: code %s message %q", ErrorCode(plain), ErrorMessage(plain))
	}
	if ErrorCode(nil) != "" {
		t.Fatal("nil has a code")
	}
	c := ConflictError("test.Append", "order-1", ExpectNoStream, 4)
	if c.Fields["actual_version"] != int64(4) || !strings.Contains(c.Message, "expected_version 4") {
		t.Fatalf("conflict %+v", c)
	}
	// A stream without events is "no_stream" in the API's words, and the
	// advice is a request the API takes (never "-1").
	c = ConflictError("test.Append", "order-a", ExpectExists, NoStream)
	if c.Fields["actual_version"] != "no_stream" || !strings.Contains(c.Message, `expected_version "no_stream"`) || strings.Contains(c.Message, "-1") {
		t.Fatalf("conflict on a stream without events %+v", c)
	}
}
