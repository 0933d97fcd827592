package vault

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// Transit is a root key provider on a Vault Transit key: it implements
// crypto.RootKeyProvider, crypto.RootRewrapper and crypto.RootRotator. It
// is safe for concurrent use and starts no goroutine.
type Transit struct {
	cfg      Config
	client   *api.Client
	logger   *slog.Logger
	requests *requestCounter

	encryptPath, decryptPath, rewrapPath, keyPath string

	loginMu sync.Mutex // one AppRole login at a time
}

// New returns the provider cfg describes, logged in (AppRole) or holding
// its token. It calls Vault only for an AppRole login; run Check before
// serving to learn that the mount, the key and the permissions are right.
// Errors: EINVALID for a configuration that cannot work; EUNAVAILABLE if the
// AppRole login fails.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Transit, error) {
	const op = "vault.New"
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, invalid(op, err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MinRetryWait == 0 {
		cfg.MinRetryWait = DefaultMinRetryWait
	}
	if cfg.MaxRetryWait == 0 {
		cfg.MaxRetryWait = DefaultMaxRetryWait
	}
	base, err := cfg.httpTransport()
	if err != nil {
		return nil, invalid(op, err)
	}
	counter := &requestCounter{base: base, counts: map[string]int{}}
	client, err := api.NewClient(&api.Config{
		Address: cfg.Address,
		HttpClient: &http.Client{
			Transport: counter,
			// The Vault client follows a standby's redirect itself.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Timeout:      cfg.Timeout,
		CheckRetry:   checkRetry,
		MaxRetries:   cfg.MaxRetries,
		MinRetryWait: cfg.MinRetryWait,
		MaxRetryWait: cfg.MaxRetryWait,
	})
	if err != nil {
		return nil, invalid(op, fmt.Errorf("client for Vault at %s: %w", cfg.Address, err))
	}
	// NewClient takes VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from
	// the environment: only cfg counts.
	client.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	client.ClearToken()
	client.ClearNamespace()
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	mount, key := cfg.mount(), cfg.key()
	t := &Transit{
		cfg:         cfg,
		client:      client,
		logger:      logger,
		requests:    counter,
		encryptPath: mount + "/encrypt/" + key,
		decryptPath: mount + "/decrypt/" + key,
		rewrapPath:  mount + "/rewrap/" + key,
		keyPath:     mount + "/keys/" + key,
	}
	switch {
	case cfg.Token != "":
		client.SetToken(cfg.Token)
	case cfg.TokenFile != "":
		token, err := readSecretFile("Vault token", cfg.TokenFile)
		if err != nil {
			return nil, invalid(op, err)
		}
		client.SetToken(token)
	default:
		if err := t.login(ctx, ""); err != nil {
			return nil, lift(op, err)
		}
	}
	return t, nil
}

// String names the Vault and the key; it prints no token.
func (t *Transit) String() string {
	return fmt.Sprintf("vault.Transit(%s %s)", t.cfg.Address, t.keyPath)
}

// login logs in with AppRole unless the client's token is no longer stale,
// the token a failed request used: concurrent failures log in once.
func (t *Transit) login(ctx context.Context, stale string) error {
	const op = "vault.Transit.login"
	t.loginMu.Lock()
	defer t.loginMu.Unlock()
	if stale != "" && t.client.Token() != stale {
		return nil
	}
	roleID := t.cfg.RoleID
	if t.cfg.RoleIDFile != "" {
		var err error
		if roleID, err = readSecretFile("AppRole role id", t.cfg.RoleIDFile); err != nil {
			return invalid(op, err)
		}
	}
	secretID := &approle.SecretID{FromString: t.cfg.SecretID, FromFile: t.cfg.SecretIDFile}
	auth, err := approle.NewAppRoleAuth(roleID, secretID, approle.WithMountPath(t.cfg.appRoleMount()))
	if err != nil {
		return invalid(op, fmt.Errorf("AppRole login: %w", err))
	}
	secret, err := t.client.Auth().Login(ctx, auth)
	if err != nil {
		path := "auth/" + t.cfg.appRoleMount() + "/login"
		var re *api.ResponseError
		if errors.As(err, &re) && (re.StatusCode == http.StatusBadRequest || re.StatusCode == http.StatusForbidden) {
			return unavailable(op, &vaultFailure{
				detail: fmt.Sprintf("Vault at %s: AppRole login at %s refused: the role id or secret id is wrong or expired (%s)", t.cfg.Address, path, vaultErrors(re)),
				err:    err,
			})
		}
		return t.fail(op, path, "update", err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return unavailable(op, &vaultFailure{detail: fmt.Sprintf("Vault at %s: AppRole login at %s returned no token", t.cfg.Address, t.cfg.appRoleMount()), err: errors.New("no client token")})
	}
	t.logger.Info("logged in to Vault with AppRole", slog.String("vault_addr", t.cfg.Address), slog.Int("token_ttl_seconds", secret.Auth.LeaseDuration))
	return nil
}

// write sends data to path. A permission denial (HTTP 403: the token
// expired or was revoked, or its policy lacks the capability) leads to one
// renewal of the credentials (reauth) and, if they changed, one more try.
func (t *Transit) write(ctx context.Context, path string, data map[string]any) (*api.Secret, error) {
	token := t.client.Token()
	s, err := t.client.Logical().WriteWithContext(ctx, path, data)
	if err != nil && isStatus(err, http.StatusForbidden) {
		retry, rerr := t.reauth(ctx, token)
		if rerr != nil {
			return nil, rerr
		}
		if retry {
			s, err = t.client.Logical().WriteWithContext(ctx, path, data)
		}
	}
	return s, err
}

// read is write for a GET; a 404 is an *api.ResponseError.
func (t *Transit) read(ctx context.Context, path string) (*api.Secret, error) {
	token := t.client.Token()
	s, err := t.readOnce(ctx, path)
	if err != nil && isStatus(err, http.StatusForbidden) {
		retry, rerr := t.reauth(ctx, token)
		if rerr != nil {
			return nil, rerr
		}
		if retry {
			s, err = t.readOnce(ctx, path)
		}
	}
	return s, err
}

// reauth renews the credentials after Vault refused stale, the token a
// request was sent with, and reports whether the request is worth one more
// try. With AppRole it logs in again. With a token file it reads the file
// again: an operator (or `make vault-dev`, which revokes the old tokens and
// writes new ones under the same names) may have replaced the token, and a
// new one is used from then on without a restart; the same token, or a file
// that cannot be read, leaves the refusal as it is (logged, the path only).
// A token given inline (-vault-token) cannot change. Concurrent refusals
// renew once: a client token other than stale means another request did it.
func (t *Transit) reauth(ctx context.Context, stale string) (bool, error) {
	switch {
	case t.cfg.usesAppRole():
		if err := t.login(ctx, stale); err != nil {
			return false, err
		}
		return true, nil
	case t.cfg.TokenFile == "":
		return false, nil
	}
	t.loginMu.Lock()
	defer t.loginMu.Unlock()
	if t.client.Token() != stale {
		return true, nil
	}
	token, err := readSecretFile("Vault token", t.cfg.TokenFile)
	if err != nil {
		t.logger.Warn("Vault refused the token; reading the token file again failed", slog.String("vault_addr", t.cfg.Address), slog.String("token_file", t.cfg.TokenFile), slog.String("error", err.Error()))
		return false, nil
	}
	if token == stale {
		return false, nil
	}
	t.client.SetToken(token)
	t.logger.Info("Vault refused the token; the token file holds a new one, using it", slog.String("vault_addr", t.cfg.Address), slog.String("token_file", t.cfg.TokenFile))
	return true, nil
}

func (t *Transit) readOnce(ctx context.Context, path string) (*api.Secret, error) {
	resp, err := t.client.Logical().ReadRawWithContext(ctx, path)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	return api.ParseSecret(resp.Body)
}

// derivationContext is the Transit context a wrapped key is bound to: the
// SHA-256 of the aad, so that every aad, the empty one included, is a
// context of the same length, and Vault's logs see no tenant id.
func derivationContext(aad []byte) string {
	sum := sha256.Sum256(aad)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// WrapKey encrypts key with the newest version of the Transit key, under the
// key derived for aad. The result is Transit's ciphertext, "vault:vN:...".
// Errors: EUNAVAILABLE if Vault cannot be reached, is sealed, or refuses
// (permission, missing key or mount); EINTERNAL for an answer that makes no
// sense.
func (t *Transit) WrapKey(ctx context.Context, key, aad []byte) ([]byte, error) {
	const op = "vault.Transit.WrapKey"
	s, err := t.write(ctx, t.encryptPath, map[string]any{
		"plaintext": base64.StdEncoding.EncodeToString(key),
		"context":   derivationContext(aad),
	})
	if err != nil {
		return nil, t.fail(op, t.encryptPath, "update", err)
	}
	ct, err := ciphertextOf(s)
	if err != nil {
		return nil, internal(op, "Vault answered an encrypt request without a usable ciphertext", err)
	}
	return []byte(ct), nil
}

// UnwrapKey decrypts what WrapKey returned for the same aad.
// Errors: EINTERNAL wrapping crypto.ErrAuthentication if wrapped is not a
// Transit ciphertext, was altered, or was wrapped for another aad or by
// another key; EKEYRETIRED (wrapping ErrRootVersionRetired) if the root key
// version that wrapped it was retired; EUNAVAILABLE as for WrapKey.
func (t *Transit) UnwrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	const op = "vault.Transit.UnwrapKey"
	ct, err := parseCiphertext(wrapped)
	if err != nil {
		return nil, authError(op, err.Error())
	}
	s, err := t.write(ctx, t.decryptPath, map[string]any{
		"ciphertext": ct.String(),
		"context":    derivationContext(aad),
	})
	if err != nil {
		return nil, t.failOpen(op, t.decryptPath, ct.version, err)
	}
	var plain string
	if s != nil {
		plain, _ = s.Data["plaintext"].(string)
	}
	key, err := base64.StdEncoding.DecodeString(plain)
	if err != nil || len(key) == 0 {
		return nil, internal(op, "Vault answered a decrypt request without a usable plaintext", err)
	}
	return key, nil
}

// RewrapKey re-encrypts wrapped under the newest version of the Transit key
// without the key leaving Vault (transit/rewrap), for the same aad.
// Errors: as UnwrapKey.
func (t *Transit) RewrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	const op = "vault.Transit.RewrapKey"
	ct, err := parseCiphertext(wrapped)
	if err != nil {
		return nil, authError(op, err.Error())
	}
	s, err := t.write(ctx, t.rewrapPath, map[string]any{
		"ciphertext": ct.String(),
		"context":    derivationContext(aad),
	})
	if err != nil {
		return nil, t.failOpen(op, t.rewrapPath, ct.version, err)
	}
	out, err := ciphertextOf(s)
	if err != nil {
		return nil, internal(op, "Vault answered a rewrap request without a usable ciphertext", err)
	}
	return []byte(out), nil
}

func ciphertextOf(s *api.Secret) (string, error) {
	if s == nil {
		return "", errors.New("empty response")
	}
	ct, _ := s.Data["ciphertext"].(string)
	if _, err := parseCiphertext([]byte(ct)); err != nil {
		return "", err
	}
	return ct, nil
}

// onceKey marks a context whose Vault requests are tried once (tryOnce).
type onceKey struct{}

// tryOnce returns ctx marked so that its Vault requests are not retried:
// a readiness probe answers within its own deadline with what Vault said
// (sealed, refused), rather than retrying past it into "did not answer in
// time".
func tryOnce(ctx context.Context) context.Context {
	return context.WithValue(ctx, onceKey{}, true)
}

// checkRetry is Vault's default retry policy (the request context's
// retries, back-off and 5xx), but for a context tryOnce marked.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Value(onceKey{}) != nil {
		return false, nil
	}
	return api.DefaultRetryPolicy(ctx, resp, err)
}
