// Command cert-manager-controller runs cert-manager's own controllers out of cluster, against
// one API server, for the lab (lab/certmanager.py starts one per cluster).
//
// Upstream's main package (cmd/controller) is a Go module of its own ("controller-binary")
// that the Go module proxy does not serve, so this is a smaller main of ours built on the same
// library packages of github.com/cert-manager/cert-manager: the controller context factory of
// pkg/controller, and the controllers and issuers as upstream registers them (each package's
// init adds itself to pkg/controller's registry or pkg/issuer's). The loops that run are
// upstream's code; only the wiring is ours.
//
// What runs: the Issuer and ClusterIssuer controllers (with the CA, self-signed and Vault
// issuers), the CertificateRequest approver and the CA, self-signed and Vault CertificateRequest
// controllers, and the six Certificate controllers (trigger, key manager, request manager,
// issuing, readiness, revision manager): all that a Certificate from a CA or Vault issuer needs
// to be issued and renewed.
//
// What it leaves out, compared with upstream's controller: ACME (orders, challenges, HTTP-01
// solver pods) and the Venafi issuer (its module, github.com/Venafi/vcert/v5, answers 403 on
// the proxy; not importing it keeps it out of the build), the ingress and Gateway API
// certificate shims, the experimental CertificateSigningRequest controllers, the certificate
// metrics controller, leader election (one instance per cluster; --leader-elect=true is
// refused), the --config file and --feature-gates (the library's defaults apply, as do its PEM
// size limits), TLS on the metrics endpoint, pprof. Its health endpoint is ours: /livez, and
// /readyz that answers 200 once the informer caches have synced.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	logsapi "k8s.io/component-base/logs/api/v1"

	"github.com/cert-manager/cert-manager/pkg/controller"
	crapprover "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	crvault "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/vault"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"

	// The issuer implementations the Issuer controllers set up (they register themselves).
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"
)

// The controllers this binary can run; all of them by default. ClusterIssuers are cluster
// scoped: as upstream does, they are left out when --namespace limits the scope.
var (
	allControllers = []string{
		issuers.ControllerName,
		clusterissuers.ControllerName,
		crapprover.ControllerName,
		crca.CRControllerName,
		crselfsigned.CRControllerName,
		crvault.CRControllerName,
		trigger.ControllerName,
		issuing.ControllerName,
		keymanager.ControllerName,
		requestmanager.ControllerName,
		readiness.ControllerName,
		revisionmanager.ControllerName,
	}
	clusterScoped = []string{clusterissuers.ControllerName}
)

type options struct {
	kubeconfig               string
	namespace                string
	clusterResourceNamespace string
	controllers              []string
	workers                  int
	leaderElect              bool
	metricsAddress           string
	healthzAddress           string
	logging                  *logsapi.LoggingConfiguration
}

func parseFlags(args []string) (*options, error) {
	o := &options{logging: logsapi.NewLoggingConfiguration()}
	fs := pflag.NewFlagSet("cert-manager-controller", pflag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to manage (required: this runs out of cluster)")
	fs.StringVar(&o.namespace, "namespace", "", "only watch this namespace (ClusterIssuers are then off); all namespaces when empty")
	fs.StringVar(&o.clusterResourceNamespace, "cluster-resource-namespace", "kube-system",
		"namespace of the Secrets that ClusterIssuers refer to")
	fs.StringSliceVar(&o.controllers, "controllers", allControllers, "controllers to run, of: "+strings.Join(allControllers, ", "))
	fs.IntVar(&o.workers, "concurrent-workers", 5, "workers per controller (upstream's default)")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "accepted for upstream's command lines; only false is supported")
	fs.StringVar(&o.metricsAddress, "metrics-listen-address", "", "host:port of the Prometheus metrics endpoint; off when empty")
	fs.StringVar(&o.healthzAddress, "healthz-listen-address", "", "host:port of /livez and /readyz; off when empty")
	logf.AddFlags(o.logging, fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case o.kubeconfig == "":
		return nil, errors.New("--kubeconfig is required")
	case o.leaderElect:
		return nil, errors.New("--leader-elect=true: this build has no leader election; run one instance per cluster")
	case o.workers < 1:
		return nil, errors.New("--concurrent-workers must be at least 1")
	}
	for _, name := range o.controllers {
		if !slices.Contains(allControllers, name) {
			return nil, fmt.Errorf("--controllers: unknown controller %q (known: %s)", name, strings.Join(allControllers, ", "))
		}
	}
	if o.namespace != "" {
		o.controllers = slices.DeleteFunc(slices.Clone(o.controllers), func(n string) bool { return slices.Contains(clusterScoped, n) })
	}
	return o, logf.ValidateAndApply(o.logging)
}

func main() {
	logf.InitLogs()
	defer logf.FlushLogs()
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		return
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager-controller:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	if err := run(ctx, opts); err != nil {
		logf.Log.Error(err, "cert-manager-controller stopped")
		logf.FlushLogs()
		os.Exit(1)
	}
}

func run(rootCtx context.Context, opts *options) error {
	log := logf.FromContext(rootCtx)
	info := util.VersionInfo()
	log.Info("starting cert-manager controller (mesh lab build)", "version", info.GitVersion, "go_version", info.GoVersion)

	// Upstream's defaults (internal/apis/config/controller/v1alpha1), for what applies here.
	factory, err := controller.NewContextFactory(rootCtx, controller.ContextOptions{
		Kubeconfig:         opts.kubeconfig,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		Namespace:          opts.namespace,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: opts.clusterResourceNamespace,
		},
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		return err
	}
	cctx, err := factory.Build()
	if err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(rootCtx)
	names := slices.Clone(opts.controllers)
	sort.Strings(names)
	log.Info("enabled controllers: " + strings.Join(names, ", "))
	// Each constructor registers the informers it needs with the shared factories; they are
	// started after all constructors ran, as upstream does.
	for _, name := range names {
		iface, err := controller.Known()[name](factory)
		if err != nil {
			return fmt.Errorf("error starting controller %s: %w", name, err)
		}
		g.Go(func() error { return iface.Run(opts.workers, ctx) })
	}
	cctx.SharedInformerFactory.Start(ctx.Done())
	cctx.KubeSharedInformerFactory.Start(ctx.Done())

	var ready atomic.Bool
	g.Go(func() error {
		waitForCaches(ctx, log, cctx, &ready)
		return nil
	})
	if opts.healthzAddress != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !ready.Load() {
				http.Error(w, "informer caches not synced", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		if err := serve(ctx, g, log, "healthz", opts.healthzAddress, mux); err != nil {
			return err
		}
	}
	if opts.metricsAddress != "" {
		cctx.Metrics.SetupCertificateCollector(cctx.SharedInformerFactory.Certmanager().V1().Certificates().Lister())
		cctx.Metrics.SetupIssuerCollector(cctx.SharedInformerFactory.Certmanager().V1().Issuers().Lister())
		ln, err := listen(ctx, "metrics", opts.metricsAddress)
		if err != nil {
			return err
		}
		srv := cctx.Metrics.NewServer(ln)
		g.Go(func() error { return serveOn(ctx, log, "metrics", ln, srv) })
	}

	err = g.Wait()
	cctx.KubeSharedInformerFactory.Shutdown()
	cctx.SharedInformerFactory.Shutdown()
	// Told to stop (SIGTERM), controllers still waiting for their caches return an error:
	// that is a clean stop, not a failure.
	if err != nil && rootCtx.Err() == nil {
		return err
	}
	log.Info("control loops exited")
	return nil
}

// waitForCaches sets ready once every informer the controllers use has synced. Until then it
// says why not, at once and every 10 s: without cert-manager's CRDs the API server does not
// serve cert-manager.io/v1, and the informers (upstream's code) only keep retrying their lists.
func waitForCaches(ctx context.Context, log logr.Logger, cctx *controller.Context, ready *atomic.Bool) {
	synced := make(chan struct{})
	go func() {
		defer close(synced)
		cctx.SharedInformerFactory.WaitForCacheSync(ctx.Done())
		cctx.KubeSharedInformerFactory.WaitForCacheSync(ctx.Done())
	}()
	crdsMissing := func() bool {
		_, err := cctx.Client.Discovery().ServerResourcesForGroupVersion("cert-manager.io/v1")
		if err != nil {
			log.Error(err, "not ready: the API server does not serve cert-manager.io/v1; are cert-manager's CRDs installed?")
		}
		return err != nil
	}
	crdsMissing()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-synced:
			if ctx.Err() == nil {
				ready.Store(true)
				log.Info("informer caches synced: ready")
			}
			return
		case <-tick.C:
			if !crdsMissing() {
				log.Info("not ready: informer caches still syncing")
			}
		}
	}
}

func listen(ctx context.Context, what, address string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on the %s address %s: %w", what, address, err)
	}
	return ln, nil
}

func serve(ctx context.Context, g *errgroup.Group, log logr.Logger, what, address string, handler http.Handler) error {
	ln, err := listen(ctx, what, address)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second}
	g.Go(func() error { return serveOn(ctx, log, what, ln, srv) })
	return nil
}

// serveOn serves until ctx ends, then shuts the server down within 5 s.
func serveOn(ctx context.Context, log logr.Logger, what string, ln net.Listener, srv *http.Server) error {
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx) //nolint:contextcheck // ctx is already done here
	}()
	log.Info("serving "+what, "address", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
