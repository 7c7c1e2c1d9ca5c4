// Command lab-kubelet-api serves the part of a kubelet's HTTPS API that the kube-apiserver calls
// for `kubectl exec`, `kubectl logs` and `kubectl port-forward`, for the lab's node agent: that agent (Python) runs each
// pod's containers as host processes in a per-pod network namespace and starts this server
// beside it. The streaming (SPDY and websocket, the remotecommand protocols v1 to v4) is
// virtual-kubelet's node/api package (github.com/virtual-kubelet/virtual-kubelet); what runs a
// command and what reads a log is ours, from the files the node agent writes.
//
// It replaces nothing else of the kubelet: no pod lifecycle, no Node object or lease, no status,
// no metrics or stats (/stats, /metrics), no attach (virtual-kubelet answers 501 there), no /pods, no checkpoint, no authorization by SubjectAccessReview: any
// client certificate that --client-ca verifies may exec, so give it a CA that signs only the
// API server's kubelet client certificate (--kubelet-client-certificate).
//
// The contract with the node agent: DIR/<namespace>.<pod>/pod.json (--pods-dir DIR), written
// atomically (temp file and rename) and read anew on every request:
//
//	{"namespace": "sample", "name": "sleep-7d9c-abcde", "netns": "mlab1a2b-east-p7",
//	 "root": "/abs/path/of/the/pod/root",
//	 "containers": {"sleep": {"log": "/abs/sleep.log", "previousLog": "/abs/sleep.previous.log",
//	                          "env": {"KEY": "value"}, "uid": 0, "gid": 0, "running": true}}}
//
// Exec runs `ip netns exec <netns> setpriv --reuid=<uid> --regid=<gid> --clear-groups -- <cmd>`
// (ip netns exec also bind-mounts /etc/netns/<netns>/resolv.conf and hosts over /etc's: that is
// how the pod's DNS config reaches it) in the pod's root, with the container's env and a default
// PATH, nothing of this server's environment. Its exit code reaches the client (kubectl exec
// exits with it). Logs stream the container's log file (previousLog with ?previous=true),
// honouring tailLines, limitBytes and follow. Port-forward connects to 127.0.0.1:<port> inside
// the pod's network namespace, as the kubelet's does inside the pod sandbox: a server that
// answers only loopback callers (istiod's debug port) answers it. /healthz answers 200 "ok" to anyone; every other
// path needs a verified client certificate (401 without one).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	vkslog "github.com/virtual-kubelet/virtual-kubelet/log/slog"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

const (
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// How long an exec's output may still be copied once its process has exited: a background
	// child that keeps stdout open must not hold the stream (and kubectl) open for ever.
	ioDrainDelay = 2 * time.Second
	// How often a followed log is looked at again once its end is reached.
	followPoll = 250 * time.Millisecond
	// The kubelet's defaults (--streaming-connection-idle-timeout; remotecommand's creation
	// timeout). virtual-kubelet's own default idle timeout is 30 s, too short for a shell.
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second
)

type options struct {
	listen, cert, key, clientCA, podsDir string
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("lab-kubelet-api", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "", "HOST:PORT to serve the kubelet API on (required)")
	fs.StringVar(&o.cert, "cert", "", "serving certificate, PEM (required)")
	fs.StringVar(&o.key, "key", "", "serving certificate's key, PEM (required)")
	fs.StringVar(&o.clientCA, "client-ca", "", "CA bundle that client certificates must verify against (required)")
	fs.StringVar(&o.podsDir, "pods-dir", "", "folder of <namespace>.<pod>/pod.json, written by the node agent (required)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, required := range []struct{ name, value string }{
		{"listen", o.listen}, {"cert", o.cert}, {"key", o.key}, {"client-ca", o.clientCA}, {"pods-dir", o.podsDir},
	} {
		if required.value == "" {
			return nil, fmt.Errorf("--%s is required", required.name)
		}
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return o, nil
}

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "lab-kubelet-api:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger, opts); err != nil {
		logger.Error("lab-kubelet-api stopped", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger, opts *options) error {
	vklog.L = vkslog.FromSlog(logger)
	tlsConfig, err := serverTLS(opts)
	if err != nil {
		return err
	}
	s := &server{podsDir: opts.podsDir, logger: logger}
	// Absolute paths: the command runs with the container's PATH, which need not have them.
	for name, dest := range map[string]*string{"ip": &s.ip, "setpriv": &s.setpriv} {
		if *dest, err = exec.LookPath(name); err != nil {
			return fmt.Errorf("exec needs %s: %w", name, err)
		}
	}
	if info, err := os.Stat(opts.podsDir); err != nil || !info.IsDir() {
		return fmt.Errorf("--pods-dir %s is not a folder", opts.podsDir)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	// virtual-kubelet serves SPDY port-forwards (kubectl's, also tunnelled over websocket by the
	// API server), but hands a websocket one (client libraries' v4.channel.k8s.io, e.g. the Python
	// client's) no ports: those are served here, as the kubelet serves them.
	vkRoutes := http.NewServeMux()
	mux.HandleFunc("/portForward/", func(w http.ResponseWriter, req *http.Request) {
		if !wsstream.IsWebSocketRequest(req) {
			vkRoutes.ServeHTTP(w, req)
			return
		}
		s.websocketPortForward(w, req)
	})
	api.AttachPodRoutes(api.PodHandlerConfig{
		RunInContainer:        s.runInContainer,
		GetContainerLogs:      s.containerLogs,
		PortForward:           s.portForward,
		StreamIdleTimeout:     streamIdleTimeout,
		StreamCreationTimeout: streamCreationTimeout,
	}, vkRoutes, false)
	mux.Handle("/", vkRoutes)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.listen)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", opts.listen, err)
	}
	srv := &http.Server{
		Handler:           s.authenticated(mux),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 30 * time.Second,
		// Requests end with ctx (SIGTERM): execs are killed, followed logs end.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx) //nolint:contextcheck // ctx is already done here
	}()
	logger.Info("serving the kubelet API (exec, containerLogs, portForward)", "address", ln.Addr().String(), "podsDir", opts.podsDir)
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Shutdown does not wait for upgraded (exec) connections: their processes were killed with
	// ctx; wait until each has told its client how the command ended.
	done := make(chan struct{})
	go func() { s.requests.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		logger.Warn("execs still running at exit")
	}
	logger.Info("stopped")
	return nil
}

// serverTLS: the serving certificate, and client certificates verified against --client-ca when
// given. A missing one is refused per request (authenticated), so that /healthz answers anyone.
func serverTLS(opts *options) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(opts.cert, opts.key)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	pem, err := os.ReadFile(opts.clientCA)
	if err != nil {
		return nil, fmt.Errorf("--client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--client-ca %s holds no PEM certificate", opts.clientCA)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
	}, nil
}

type server struct {
	podsDir     string
	ip, setpriv string
	logger      *slog.Logger
	requests    sync.WaitGroup // in flight, exec streams included
}

// authenticated refuses, as the kubelet does, a request without a verified client certificate
// (401), but for /healthz. It logs every request it lets through without its query (an exec's
// command may carry secrets).
func (s *server) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			s.logger.Warn("refused: no client certificate", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			http.Error(w, "Unauthorized: a client certificate signed by --client-ca is required", http.StatusUnauthorized)
			return
		}
		s.logger.Info("request", "method", r.Method, "path", r.URL.Path, "client", r.TLS.VerifiedChains[0][0].Subject.CommonName)
		s.requests.Add(1)
		defer s.requests.Done()
		next.ServeHTTP(w, r)
	})
}

type podFile struct {
	Namespace  string                   `json:"namespace"`
	Name       string                   `json:"name"`
	Netns      string                   `json:"netns"`
	Root       string                   `json:"root"`
	Containers map[string]containerFile `json:"containers"`
}

type containerFile struct {
	Log         string            `json:"log"`
	PreviousLog string            `json:"previousLog"`
	Env         map[string]string `json:"env"`
	UID         int               `json:"uid"`
	GID         int               `json:"gid"`
	Running     bool              `json:"running"`
}

// lookup reads the pod's pod.json (anew: the node agent replaces it as the pod changes). A pod
// or container it does not have is virtual-kubelet's NotFound (404 for logs).
func (s *server) lookup(namespace, podName, container string) (*podFile, *containerFile, error) {
	pod, err := s.lookupPod(namespace, podName)
	if err != nil {
		return nil, nil, err
	}
	c, ok := pod.Containers[container]
	if !ok {
		return nil, nil, errdefs.NotFoundf("container %q not found in pod %s/%s", container, namespace, podName)
	}
	return pod, &c, nil
}

func (s *server) lookupPod(namespace, podName string) (*podFile, error) {
	// Namespaces are DNS labels (no dot): the folder name splits at its first dot.
	if namespace == "" || podName == "" || strings.ContainsAny(namespace, "./") || strings.Contains(podName, "/") {
		return nil, errdefs.NotFoundf("pod %s/%s not found", namespace, podName)
	}
	data, err := os.ReadFile(filepath.Join(s.podsDir, namespace+"."+podName, "pod.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFoundf("pod %s/%s not found", namespace, podName)
	} else if err != nil {
		return nil, err
	}
	var pod podFile
	if err := json.Unmarshal(data, &pod); err != nil {
		return nil, fmt.Errorf("pod %s/%s: pod.json: %w", namespace, podName, err)
	}
	if pod.Namespace != namespace || pod.Name != podName {
		return nil, fmt.Errorf("pod %s/%s: its pod.json names %s/%s", namespace, podName, pod.Namespace, pod.Name)
	}
	return &pod, nil
}

// portForward is virtual-kubelet's api.PortForwardHandlerFunc: one forwarded connection, to
// 127.0.0.1:port in the pod's network namespace, copied both ways until either side closes.
func (s *server) portForward(ctx context.Context, namespace, podName string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	pod, err := s.lookupPod(namespace, podName)
	if err != nil {
		return err
	}
	conn, err := dialInNetns("/run/netns/"+pod.Netns, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("pod %s/%s: port %d: %w", namespace, podName, port, err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// websocketPortForward is the kubelet's websocket port-forward (pkg/cri/streaming/portforward,
// websocket.go): the ports from ?port=, two channels each (data, error), each first carrying the
// port number (2 bytes, little endian), then the connection's bytes.
func (s *server) websocketPortForward(w http.ResponseWriter, req *http.Request) {
	parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/portForward/"), "/")
	if len(parts) < 2 {
		http.NotFound(w, req)
		return
	}
	namespace, podName := parts[0], parts[1]
	var ports []int32
	for _, value := range req.URL.Query()["port"] {
		for _, text := range strings.Split(value, ",") {
			port, err := strconv.ParseUint(text, 10, 16)
			if err != nil || port == 0 {
				http.Error(w, fmt.Sprintf("port %q is not a port number", text), http.StatusBadRequest)
				return
			}
			ports = append(ports, int32(port))
		}
	}
	if len(ports) == 0 {
		http.Error(w, `query parameter "port" is required`, http.StatusBadRequest)
		return
	}
	channels := make([]wsstream.ChannelType, 0, 2*len(ports))
	for range ports {
		channels = append(channels, wsstream.ReadWriteChannel, wsstream.WriteChannel)
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		"":                         {Binary: true, Channels: channels},
		"v4.channel.k8s.io":        {Binary: true, Channels: channels},
		"v4.base64.channel.k8s.io": {Binary: false, Channels: channels},
	})
	conn.SetIdleTimeout(streamIdleTimeout)
	_, streams, err := conn.Open(w, req)
	if err != nil {
		s.logger.Warn("port-forward: websocket upgrade failed", "error", err)
		return
	}
	defer conn.Close()
	var wg sync.WaitGroup
	for i, port := range ports {
		data, errs := streams[2*i], streams[2*i+1]
		number := make([]byte, 2)
		binary.LittleEndian.PutUint16(number, uint16(port))
		_, _ = data.Write(number)
		_, _ = errs.Write(number)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer errs.Close()
			if err := s.portForward(req.Context(), namespace, podName, port, data); err != nil {
				s.logger.Warn("port-forward failed", "pod", namespace+"/"+podName, "port", port, "error", err)
				fmt.Fprintf(errs, "error forwarding port %d to pod %s/%s: %v", port, namespace, podName, err)
			}
		}()
	}
	wg.Wait()
}

// dialInNetns opens a TCP connection from inside the network namespace at path: a socket belongs
// to the namespace of the thread that creates it, so this goroutine's thread enters the namespace
// for the dial alone (locked to it, and back before it is unlocked).
func dialInNetns(path, address string) (net.Conn, error) {
	target, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter %s: %w", path, err)
	}
	conn, dialErr := net.DialTimeout("tcp", address, 10*time.Second)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread cannot go back: leave it locked, so the runtime ends it with this goroutine.
		runtime.LockOSThread()
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("leave %s: %w", path, err)
	}
	return conn, dialErr
}

// runInContainer is virtual-kubelet's api.ContainerExecHandlerFunc. A non-zero exit is returned
// as a k8s.io/utils/exec.ExitError: virtual-kubelet's ServeExec turns that (and only that) into
// the NonZeroExitCode status whose exit code kubectl exits with; any other error is reported to
// the client as an internal error with its message.
func (s *server) runInContainer(ctx context.Context, namespace, podName, container string, cmd []string, attach api.AttachIO) error {
	pod, c, err := s.lookup(namespace, podName, container)
	if err != nil {
		return err
	}
	switch {
	case !c.Running:
		return fmt.Errorf("container %q in pod %s/%s is not running", container, namespace, podName)
	case len(cmd) == 0:
		return errdefs.InvalidInput("no command given")
	case pod.Netns == "" || pod.Root == "":
		return fmt.Errorf("pod %s/%s: pod.json lacks netns or root", namespace, podName)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", pod.Netns)); err != nil {
		return fmt.Errorf("pod %s/%s: network namespace %s: %w", namespace, podName, pod.Netns, err)
	}
	args := []string{"netns", "exec", pod.Netns, s.setpriv,
		"--reuid=" + strconv.Itoa(c.UID), "--regid=" + strconv.Itoa(c.GID), "--clear-groups", "--"}
	proc := exec.CommandContext(ctx, s.ip, append(args, cmd...)...)
	proc.Dir = pod.Root
	proc.Env = containerEnv(c.Env, attach.TTY())
	// Its own process group (a session with a TTY), all of which is killed when ctx ends: the
	// client went away (SPDY) or the server is stopping. `ip netns exec` and setpriv exec, not
	// fork: the process started is the command.
	proc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	proc.Cancel = func() error {
		if err := syscall.Kill(-proc.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return os.ErrProcessDone
	}
	proc.WaitDelay = ioDrainDelay
	s.logger.Info("exec", "pod", namespace+"/"+podName, "container", container, "tty", attach.TTY())

	if attach.TTY() {
		err = runWithTTY(ctx, proc, attach)
	} else {
		err = runWithPipes(proc, attach)
	}
	err = exitError(err)
	code := 0
	var exited utilexec.ExitError
	if errors.As(err, &exited) {
		code = exited.ExitStatus()
	}
	s.logger.Info("exec done", "pod", namespace+"/"+podName, "container", container, "exitCode", code, "error", err)
	return err
}

// containerEnv: the container's env and nothing of ours; PATH when it has none, and TERM for a
// TTY when it has none (as Docker does for `exec -t`).
func containerEnv(env map[string]string, tty bool) []string {
	out := make([]string, 0, len(env)+2)
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	if _, ok := env["PATH"]; !ok {
		out = append(out, "PATH="+defaultPath)
	}
	if _, ok := env["TERM"]; !ok && tty {
		out = append(out, "TERM=xterm")
	}
	slices.Sort(out)
	return out
}

// runWithPipes: stdout and stderr are copied until the command and whatever inherited them close
// them (at most ioDrainDelay after the command exits). Stdin is copied by a goroutine Wait does
// not wait for: a client's stdin may stay open after the command exits. A stream the client did
// not ask for is /dev/null (virtual-kubelet hands a nil stream, or one at EOF for websockets).
func runWithPipes(proc *exec.Cmd, attach api.AttachIO) error {
	var stdinPipe io.WriteCloser
	if in := attach.Stdin(); in != nil {
		var err error
		if stdinPipe, err = proc.StdinPipe(); err != nil {
			return err
		}
	}
	if out := attach.Stdout(); out != nil {
		proc.Stdout = out
	}
	if errOut := attach.Stderr(); errOut != nil {
		proc.Stderr = errOut
	}
	if err := proc.Start(); err != nil {
		return err
	}
	if stdinPipe != nil {
		in := attach.Stdin()
		go func() {
			_, _ = io.Copy(stdinPipe, in)
			_ = stdinPipe.Close()
		}()
	}
	return proc.Wait()
}

// runWithTTY gives the command a pseudo-terminal as its controlling terminal (stdin, stdout and
// stderr, as a container runtime does; a TTY exec has no separate stderr), sized as the client
// asks. The pty is opened with golang.org/x/sys/unix, already in virtual-kubelet's module graph.
func runWithTTY(ctx context.Context, proc *exec.Cmd, attach api.AttachIO) error {
	ptm, pts, err := openPTY()
	if err != nil {
		return fmt.Errorf("opening a pseudo-terminal: %w", err)
	}
	defer ptm.Close()
	proc.Stdin, proc.Stdout, proc.Stderr = pts, pts, pts
	proc.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = proc.Start()
	pts.Close()
	if err != nil {
		return err
	}
	sizeCtx, stopResizing := context.WithCancel(ctx)
	defer stopResizing()
	if resize := attach.Resize(); resize != nil {
		go func() {
			for {
				select {
				case size := <-resize:
					setWinsize(ptm, size)
				case <-sizeCtx.Done():
					return
				}
			}
		}()
	}
	if in := attach.Stdin(); in != nil {
		go func() { _, _ = io.Copy(ptm, in) }()
	}
	out := io.Writer(io.Discard)
	if attach.Stdout() != nil {
		out = attach.Stdout()
	}
	copied := make(chan struct{})
	go func() {
		// Reading the master fails with EIO once no process has the terminal open any more.
		_, _ = io.Copy(out, ptm)
		close(copied)
	}()
	err = proc.Wait()
	select {
	case <-copied:
	case <-time.After(ioDrainDelay):
	}
	return err
}

func openPTY() (ptm, pts *os.File, err error) {
	ptm, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	var n uint32
	if err = control(ptm, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return err
		}
		n, err = unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		return err
	}); err == nil {
		pts, err = os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|syscall.O_NOCTTY, 0)
	}
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	return ptm, pts, nil
}

func setWinsize(ptm *os.File, size api.TermSize) {
	_ = control(ptm, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: size.Height, Col: size.Width})
	})
}

// control runs f on f's descriptor without (*os.File).Fd, which would make it blocking.
func control(f *os.File, do func(fd int) error) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var doErr error
	if err := raw.Control(func(fd uintptr) { doErr = do(int(fd)) }); err != nil {
		return err
	}
	return doErr
}

// exitError turns a command's exit into what virtual-kubelet reports: nil for 0 (also when
// a background child kept the output open past ioDrainDelay), a utilexec.CodeExitError with the
// exit code, or 128+signal when a signal ended it (as a shell reports it).
func exitError(err error) error {
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return err
	}
	code := exit.ExitCode()
	if status, ok := exit.Sys().(syscall.WaitStatus); ok && status.Signaled() {
		code = 128 + int(status.Signal())
	}
	return utilexec.CodeExitError{Err: err, Code: code}
}

// containerLogs is virtual-kubelet's api.ContainerLogsHandlerFunc: the container's log file
// (previousLog with Previous) from the start or its last Tail lines, at most LimitBytes, and with
// Follow what is appended to it until the client goes, the container stops running or its log
// is replaced (a restart). The files carry no timestamps: SinceSeconds, SinceTime and Timestamps
// are not supported and ignored. virtual-kubelet parses tailLines=0 as no tail: all lines.
func (s *server) containerLogs(ctx context.Context, namespace, podName, container string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	_, c, err := s.lookup(namespace, podName, container)
	if err != nil {
		return nil, err
	}
	path := c.Log
	if opts.Previous {
		path = c.PreviousLog
	}
	var f *os.File
	if path != "" {
		f, err = os.Open(path)
	}
	if path == "" || errors.Is(err, fs.ErrNotExist) {
		if opts.Previous {
			return nil, errdefs.InvalidInputf("previous terminated container %q in pod %q not found", container, podName)
		}
		return nil, errdefs.NotFoundf("container %q in pod %s/%s has no log yet", container, namespace, podName)
	} else if err != nil {
		return nil, err
	}
	if opts.Tail > 0 {
		offset, err := tailOffset(f, opts.Tail)
		if err == nil {
			_, err = f.Seek(offset, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	var r io.Reader = f
	if opts.Follow && !opts.Previous {
		r = &follower{ctx: ctx, f: f, writing: func() bool {
			_, now, err := s.lookup(namespace, podName, container)
			if err != nil || !now.Running || now.Log != path {
				return false
			}
			opened, err1 := f.Stat()
			current, err2 := os.Stat(path)
			return err1 == nil && err2 == nil && os.SameFile(opened, current)
		}}
	}
	if opts.LimitBytes > 0 {
		r = io.LimitReader(r, int64(opts.LimitBytes))
	}
	return struct {
		io.Reader
		io.Closer
	}{r, f}, nil
}

// tailOffset is where the last `lines` lines of f begin (a final newline ends the last line).
func tailOffset(f *os.File, lines int) (int64, error) {
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 32*1024)
	end, found, last := info.Size(), 0, true
	for end > 0 {
		n := min(int64(len(buf)), end)
		start := end - n
		if _, err := f.ReadAt(buf[:n], start); err != nil && err != io.EOF {
			return 0, err
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] == '\n' && !last {
				if found++; found == lines {
					return start + i + 1, nil
				}
			}
			last = false
		}
		end = start
	}
	return 0, nil
}

// follower reads f and, at its end, waits for more while writing() says the file is still the
// container's current log; then it ends (after what was written until then), as it does when ctx
// ends (the client went away).
type follower struct {
	ctx     context.Context
	f       *os.File
	writing func() bool
}

func (r *follower) Read(p []byte) (int, error) {
	for {
		n, err := r.f.Read(p)
		if n > 0 || err != io.EOF {
			return n, err
		}
		if !r.writing() {
			return r.f.Read(p)
		}
		select {
		case <-r.ctx.Done():
			return 0, io.EOF
		case <-time.After(followPoll):
		}
	}
}
