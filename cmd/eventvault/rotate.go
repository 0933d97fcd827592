package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
)

const rotateUsage = `usage:
  eventvault rotate tenant -tenant <tenant> [-resume] [flags]
      add a version of the tenant's KEK and re-wrap every stream key of the
      tenant under it; -resume only finishes the re-wrap of an earlier,
      interrupted run, without adding a version
  eventvault rotate root [-resume] [-retire] [flags]
      add a version of the Vault Transit root key and re-wrap every tenant
      KEK under it; -resume only re-wraps; -retire then makes older root key
      versions unusable (min_decryption_version), so that KEK rows in old
      backups no longer unwrap
  eventvault rotate cycle [flags]
      end a crypto-period: rotate every tenant's KEK, re-wrap its stream
      keys, destroy the old KEK versions, rotate the root key, re-wrap the
      KEKs and retire the old root versions. Nothing in a backup taken before
      the cycle can be decrypted afterwards, so erased data no longer lives
      on in backups. Run it on a schedule (daily, from cron): the interval
      bounds how long erased data stays readable in backups, and how long a
      backup stays restorable. Needs Vault Transit.

Events are never re-encrypted; reads and appends go on during a rotation.
Every run is safe to repeat: an interrupted one is finished by running it
again. The store and the root key are opened as 'eventvault server' opens
them (same flags and EVENTVAULT_* variables). With the embedded store
(-dev), stop the server first, or use the HTTP endpoints instead.
`

// rotateOptions are the flags of 'eventvault rotate'.
type rotateOptions struct {
	what          string // "tenant", "root" or "cycle"
	tenant        eventvault.TenantID
	resume        bool
	retire        bool
	progressEvery int
}

func runRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, cfg, err := parseRotateFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := newCommandLogger(cfg.LogFormat, stderr)
	root, store, _, err := openOperator(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	keys := evcrypto.NewKeyManager(evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{}))
	r := &rotation{keys: keys, store: store, opts: opts, stdout: stdout, stderr: stderr}
	switch opts.what {
	case "tenant":
		return r.tenant(ctx)
	case "cycle":
		return r.cycle(ctx)
	}
	return r.root(ctx)
}

func (r *rotation) cycle(ctx context.Context) error {
	start := time.Now()
	if err := recordOperator(ctx, r.store, eventvault.DeploymentLog, "crypto_period_started", "root_key", nil); err != nil {
		return err
	}
	p, err := r.keys.EndCryptoPeriod(ctx, func(step string, done int) {
		if done%r.opts.progressEvery == 0 {
			fmt.Fprintf(r.stderr, "%s: %d done\n", step, done)
		}
	})
	if eventvault.ErrorCode(err) == eventvault.EFORBIDDEN {
		return err // checked before the first step: nothing to finish
	}
	if err != nil {
		return fmt.Errorf("%w\nthe cycle is safe to run again: 'eventvault rotate cycle' finishes it", err)
	}
	fmt.Fprintf(r.stdout, "crypto-period ended in %s: %d tenants rotated (%d skipped), %d stream keys re-wrapped, %d old KEK versions destroyed, root key version %d, root versions before it retired\n",
		time.Since(start).Round(time.Millisecond), p.Tenants, p.SkippedTenants, p.StreamKeys, p.DestroyedKEKs, p.RootVersion)
	return recordOperator(ctx, r.store, eventvault.DeploymentLog, "crypto_period", "root_key", map[string]any{
		"tenants": p.Tenants, "stream_keys": p.StreamKeys, "destroyed_keks": p.DestroyedKEKs, "root_version": p.RootVersion})
}

// rotation runs one 'eventvault rotate' command.
type rotation struct {
	keys  *evcrypto.KeyManager
	store interface {
		eventvault.KeyStore
		eventvault.AuditStore
	}
	opts   rotateOptions
	stdout io.Writer
	stderr io.Writer
}

func (r *rotation) tenant(ctx context.Context) error {
	t := r.opts.tenant
	if err := r.keys.CheckRootPermissions(ctx, evcrypto.RootWrap, evcrypto.RootUnwrap); err != nil {
		return err
	}
	if err := recordOperator(ctx, r.store, t, "kek_rotation_started", "tenant", map[string]any{"resume": r.opts.resume}); err != nil {
		return err
	}
	if !r.opts.resume {
		v, err := r.keys.RotateTenantKEK(ctx, t)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "tenant %s: added KEK version %d\n", t, v)
	}
	n, err := r.keys.RewrapStreamKeys(ctx, t, r.progress("stream keys"))
	if err != nil {
		return fmt.Errorf("%d stream keys re-wrapped before: %w\nrun 'eventvault rotate tenant -tenant %s -resume' to finish", n, err, t)
	}
	newest, err := r.store.TenantKey(ctx, t)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.stdout, "tenant %s: %d stream keys re-wrapped; every stream key is under KEK version %d\n", t, n, newest.Version)
	return nil
}

func (r *rotation) root(ctx context.Context) error {
	// Every permission the run needs, before it changes anything.
	need := []evcrypto.RootOperation{evcrypto.RootRewrap}
	if !r.opts.resume {
		need = append(need, evcrypto.RootRotate)
	}
	if r.opts.retire {
		need = append(need, evcrypto.RootRetire)
	}
	if err := r.keys.CheckRootPermissions(ctx, need...); err != nil {
		return err
	}
	if err := recordOperator(ctx, r.store, eventvault.DeploymentLog, "root_rotation_started", "root_key", map[string]any{"resume": r.opts.resume, "retire": r.opts.retire}); err != nil {
		return err
	}
	if !r.opts.resume {
		v, err := r.keys.RotateRoot(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "added root key version %d\n", v)
	}
	n, err := r.keys.RewrapRootWrapped(ctx, r.progress("tenant KEK versions"))
	if err != nil {
		return fmt.Errorf("%d tenant KEK versions re-wrapped before: %w\nrun 'eventvault rotate root -resume' to finish", n, err)
	}
	newest, err := r.keys.NewestRootVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.stdout, "%d tenant KEK versions and the deployment keys re-wrapped under root key version %d\n", n, newest)
	if !r.opts.retire {
		return nil
	}
	if err := r.keys.RetireRootVersionsBefore(ctx, newest); err != nil {
		return err
	}
	fmt.Fprintf(r.stdout, "retired root key versions before %d: key rows they wrapped, in backups too, can no longer be unwrapped\n", newest)
	return nil
}

// progress returns a progress callback that prints every
// opts.progressEvery keys, with the rate so far, on stderr.
func (r *rotation) progress(what string) func(int) {
	start := time.Now()
	return func(done int) {
		if done%r.opts.progressEvery != 0 {
			return
		}
		rate := float64(done) / max(time.Since(start).Seconds(), 1e-3)
		fmt.Fprintf(r.stderr, "re-wrapped %d %s (%.0f/s)\n", done, what, rate)
	}
}

func parseRotateFlags(args []string, stderr io.Writer) (rotateOptions, Config, error) {
	var o rotateOptions
	if len(args) == 0 || (args[0] != "tenant" && args[0] != "root" && args[0] != "cycle") {
		fmt.Fprint(stderr, rotateUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return o, Config{}, flag.ErrHelp
		}
		return o, Config{}, errors.New("say what to rotate: tenant, root or cycle")
	}
	o.what = args[0]
	c := Config{LogFormat: "text", KeyCacheTTL: evcrypto.DefaultTTL, KeyCacheSize: evcrypto.DefaultCacheSize}
	fs := flag.NewFlagSet("rotate "+o.what, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, rotateUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	var tenant string
	if o.what == "tenant" {
		fs.StringVar(&tenant, "tenant", "", "the tenant whose KEK rotates (required)")
	} else if o.what == "root" {
		fs.BoolVar(&o.retire, "retire", false, "after the re-wrap, retire every root key version before the newest")
	}
	if o.what != "cycle" {
		fs.BoolVar(&o.resume, "resume", false, "only finish the re-wrap of an earlier run; add no version")
	}
	fs.IntVar(&o.progressEvery, "progress-every", 1000, "print progress on stderr every this many keys")
	storeAndRootFlags(fs, &c)
	if err := parseFlags(fs, args[1:]); err != nil {
		return o, Config{}, err
	}
	if fs.NArg() > 0 {
		return o, Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.what == "tenant" {
		if tenant == "" {
			return o, Config{}, errors.New("-tenant is required: name the tenant whose KEK rotates")
		}
		o.tenant = eventvault.TenantID(tenant)
		if err := eventvault.ValidateTenant(o.tenant); err != nil {
			return o, Config{}, err
		}
	}
	if o.progressEvery < 1 {
		return o, Config{}, fmt.Errorf("-progress-every must be 1 or more, not %d", o.progressEvery)
	}
	if err := c.validate(); err != nil {
		return o, Config{}, err
	}
	return o, c, nil
}
