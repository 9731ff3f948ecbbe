// A libp2p peer assembled from the Go libraries go-libp2p itself is built on: flynn/noise for the
// Noise XX handshake and transport, hashicorp/yamux (the code go-yamux was forked from) for stream
// multiplexing. The glue go-libp2p adds on top (multistream-select, the libp2p Noise payload,
// peer ids, identify, ping) is written here from the specs, as small as the interop tests need.
//
// Driven like js/peer.mjs: JSON lines on stdin are commands, JSON lines on stdout are events and
// results. Built and run by test_p2p_go.py (Debian: golang-go, golang-github-flynn-noise-dev,
// golang-github-hashicorp-yamux-dev; GOPATH mode, no network).
//
//	go run peer.go [--seed HEX32]
//	events:   {"event":"ready","peer_id":..,"addrs":[..]}  {"event":"connection:open","peer":..,"direction":..}
//	          {"event":"identify","peer":..,"protocols":[..],"agent_version":..,"protocol_version":..,"listen_addrs":[..]}
//	commands: dial{target}  ping{target}  open{target,protocol}  echo{target,streams,bytes_per_stream}  stop
package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flynn/noise"
	"github.com/hashicorp/yamux"
)

const (
	protoNoise = "/noise"
	protoYamux = "/yamux/1.0.0"
	protoID    = "/ipfs/id/1.0.0"
	protoPing  = "/ipfs/ping/1.0.0"
	protoEcho  = "/chorus/echo/1.0.0"
	agent      = "chorus-interop-go/1.0 (flynn/noise, hashicorp/yamux)"
)

var (
	priv       ed25519.PrivateKey
	selfID     string
	pubProto   []byte // libp2p PublicKey protobuf of our key
	listenAddr string

	outMu sync.Mutex
	out   = json.NewEncoder(os.Stdout)

	connsMu sync.Mutex
	conns   = map[string]*yamux.Session{}
)

func emit(v map[string]interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	_ = out.Encode(v)
}

func logf(format string, a ...interface{}) { fmt.Fprintf(os.Stderr, format+"\n", a...) }

// ---- encodings: uvarint, protobuf fields, base58, peer ids, multiaddrs ----

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendField(b []byte, field int, data []byte) []byte {
	b = appendUvarint(b, uint64(field<<3|2))
	b = appendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// parseFields returns the length-delimited fields of a protobuf message (others are skipped).
func parseFields(msg []byte) (map[int][][]byte, error) {
	fields := map[int][][]byte{}
	for len(msg) > 0 {
		key, n := binary.Uvarint(msg)
		if n <= 0 {
			return nil, errors.New("bad protobuf key")
		}
		msg = msg[n:]
		switch key & 7 {
		case 0:
			_, n = binary.Uvarint(msg)
			if n <= 0 {
				return nil, errors.New("bad protobuf varint")
			}
			msg = msg[n:]
		case 2:
			l, n := binary.Uvarint(msg)
			if n <= 0 || uint64(len(msg)-n) < l {
				return nil, errors.New("bad protobuf length")
			}
			fields[int(key>>3)] = append(fields[int(key>>3)], msg[n:n+int(l)])
			msg = msg[n+int(l):]
		default:
			return nil, fmt.Errorf("unsupported protobuf wire type %d", key&7)
		}
	}
	return fields, nil
}

const b58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func base58(b []byte) string {
	x := new(big.Int).SetBytes(b)
	var s []byte
	mod, base := new(big.Int), big.NewInt(58)
	for x.Sign() > 0 {
		x.DivMod(x, base, mod)
		s = append(s, b58[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		s = append(s, '1')
	}
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
	return string(s)
}

// A PublicKey protobuf {Type: Ed25519 (1), Data: key}; its peer id is the identity multihash of it.
func ed25519KeyProto(pub []byte) []byte {
	b := []byte{0x08, 0x01}
	return appendField(b, 2, pub)
}

func peerIDOf(keyProto []byte) string {
	mh := append([]byte{0x00, byte(len(keyProto))}, keyProto...)
	return base58(mh)
}

// Decodes the multiaddr components this test needs (ip4, ip6, tcp, p2p) to text.
func multiaddrString(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		code, n := binary.Uvarint(b)
		if n <= 0 {
			return "?"
		}
		b = b[n:]
		switch code {
		case 4:
			if len(b) < 4 {
				return "?"
			}
			sb.WriteString("/ip4/" + net.IP(b[:4]).String())
			b = b[4:]
		case 41:
			if len(b) < 16 {
				return "?"
			}
			sb.WriteString("/ip6/" + net.IP(b[:16]).String())
			b = b[16:]
		case 6:
			if len(b) < 2 {
				return "?"
			}
			sb.WriteString("/tcp/" + strconv.Itoa(int(binary.BigEndian.Uint16(b))))
			b = b[2:]
		case 421:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return "?"
			}
			sb.WriteString("/p2p/" + base58(b[n:n+int(l)]))
			b = b[n+int(l):]
		default:
			return sb.String() + fmt.Sprintf("/<%d>", code)
		}
	}
	return sb.String()
}

func multiaddrBytesIP4TCP(ip net.IP, port int) []byte {
	b := appendUvarint(nil, 4)
	b = append(b, ip.To4()...)
	b = appendUvarint(b, 6)
	return binary.BigEndian.AppendUint16(b, uint16(port))
}

// ---- multistream-select 1.0 ----

func writeMsg(w io.Writer, lines ...string) error {
	var b []byte
	for _, l := range lines {
		b = appendUvarint(b, uint64(len(l)+1))
		b = append(b, l...)
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}

func readMsg(r *bufio.Reader) (string, error) {
	l, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	if l == 0 || l > 1024 {
		return "", fmt.Errorf("multistream message of %d bytes", l)
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	if b[l-1] != '\n' {
		return "", errors.New("multistream message without newline")
	}
	return string(b[:l-1]), nil
}

var errNA = errors.New("na")

// Proposes one protocol (header and proposal in one write, as go-libp2p does).
func selectProto(rw io.ReadWriter, r *bufio.Reader, proto string) error {
	if err := writeMsg(rw, "/multistream/1.0.0", proto); err != nil {
		return err
	}
	if h, err := readMsg(r); err != nil || h != "/multistream/1.0.0" {
		return fmt.Errorf("multistream header: %q %v", h, err)
	}
	got, err := readMsg(r)
	if err != nil {
		return err
	}
	if got == "na" {
		return errNA
	}
	if got != proto {
		return fmt.Errorf("multistream: asked %s, got %q", proto, got)
	}
	return nil
}

// Answers proposals until one of supported is proposed.
func handleSelect(rw io.ReadWriter, r *bufio.Reader, supported ...string) (string, error) {
	if err := writeMsg(rw, "/multistream/1.0.0"); err != nil {
		return "", err
	}
	if h, err := readMsg(r); err != nil || h != "/multistream/1.0.0" {
		return "", fmt.Errorf("multistream header: %q %v", h, err)
	}
	for {
		p, err := readMsg(r)
		if err != nil {
			return "", err
		}
		for _, s := range supported {
			if p == s {
				return p, writeMsg(rw, p)
			}
		}
		if err := writeMsg(rw, "na"); err != nil {
			return "", err
		}
	}
}

// ---- Noise: the libp2p handshake over flynn/noise, then the framed transport ----

type secureConn struct {
	net.Conn
	r       *bufio.Reader
	send    *noise.CipherState
	recv    *noise.CipherState
	wmu     sync.Mutex
	pending []byte
}

func readFrame(r *bufio.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

func writeFrame(w io.Writer, b []byte) error {
	f := binary.BigEndian.AppendUint16(nil, uint16(len(b)))
	_, err := w.Write(append(f, b...))
	return err
}

func (c *secureConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		f, err := readFrame(c.r)
		if err != nil {
			return 0, err
		}
		if c.pending, err = c.recv.Decrypt(nil, nil, f); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *secureConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var buf []byte
	for off := 0; off < len(p); {
		n := len(p) - off
		if n > 65535-16 {
			n = 65535 - 16
		}
		ct, err := c.send.Encrypt(nil, nil, p[off:off+n])
		if err != nil {
			return off, err
		}
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(ct)))
		buf = append(buf, ct...)
		off += n
	}
	if _, err := c.Conn.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

const sigPrefix = "noise-libp2p-static-key:"

func handshakePayload(static []byte) []byte {
	sig := ed25519.Sign(priv, append([]byte(sigPrefix), static...))
	return appendField(appendField(nil, 1, pubProto), 2, sig)
}

// Checks the peer's payload against its Noise static key; returns its peer id.
func verifyPayload(payload, peerStatic []byte) (string, error) {
	f, err := parseFields(payload)
	if err != nil || len(f[1]) != 1 || len(f[2]) != 1 {
		return "", fmt.Errorf("bad handshake payload (%v)", err)
	}
	key, err := parseFields(f[1][0])
	if err != nil || len(key[2]) != 1 || len(key[2][0]) != ed25519.PublicKeySize || !bytes.HasPrefix(f[1][0], []byte{0x08, 0x01}) {
		return "", errors.New("identity key is not Ed25519")
	}
	if !ed25519.Verify(key[2][0], append([]byte(sigPrefix), peerStatic...), f[2][0]) {
		return "", errors.New("identity signature does not match the Noise static key")
	}
	return peerIDOf(f[1][0]), nil
}

func secure(conn net.Conn, initiator bool, expected string) (*secureConn, string, error) {
	r := bufio.NewReader(conn)
	var err error
	if initiator {
		err = selectProto(conn, r, protoNoise)
	} else {
		_, err = handleSelect(conn, r, protoNoise)
	}
	if err != nil {
		return nil, "", fmt.Errorf("security negotiation: %w", err)
	}
	suite := noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashSHA256)
	static, err := suite.GenerateKeypair(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	hs, err := noise.NewHandshakeState(noise.Config{CipherSuite: suite, Random: rand.Reader,
		Pattern: noise.HandshakeXX, Initiator: initiator, StaticKeypair: static})
	if err != nil {
		return nil, "", err
	}
	payload := handshakePayload(static.Public)
	var send, recv *noise.CipherState
	var remote string
	if initiator {
		msg, _, _, _ := hs.WriteMessage(nil, nil) // -> e
		if err = writeFrame(conn, msg); err != nil {
			return nil, "", err
		}
		in, err := readFrame(r) // <- e, ee, s, es + payload
		if err != nil {
			return nil, "", err
		}
		p, _, _, err := hs.ReadMessage(nil, in)
		if err != nil {
			return nil, "", err
		}
		if remote, err = verifyPayload(p, hs.PeerStatic()); err != nil {
			return nil, "", err
		}
		if expected != "" && remote != expected {
			return nil, "", fmt.Errorf("peer id mismatch: expected %s, got %s", expected, remote)
		}
		msg, cs1, cs2, err := hs.WriteMessage(nil, payload) // -> s, se + payload
		if err != nil {
			return nil, "", err
		}
		if err = writeFrame(conn, msg); err != nil {
			return nil, "", err
		}
		send, recv = cs1, cs2
	} else {
		in, err := readFrame(r)
		if err != nil {
			return nil, "", err
		}
		if _, _, _, err = hs.ReadMessage(nil, in); err != nil {
			return nil, "", err
		}
		msg, _, _, err := hs.WriteMessage(nil, payload)
		if err != nil {
			return nil, "", err
		}
		if err = writeFrame(conn, msg); err != nil {
			return nil, "", err
		}
		if in, err = readFrame(r); err != nil {
			return nil, "", err
		}
		p, cs1, cs2, err := hs.ReadMessage(nil, in)
		if err != nil {
			return nil, "", err
		}
		if remote, err = verifyPayload(p, hs.PeerStatic()); err != nil {
			return nil, "", err
		}
		send, recv = cs2, cs1
	}
	return &secureConn{Conn: conn, r: r, send: send, recv: recv}, remote, nil
}

// ---- connections and streams ----

type readerConn struct {
	*secureConn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func upgrade(conn net.Conn, initiator bool, expected string) (string, error) {
	sc, remote, err := secure(conn, initiator, expected)
	if err != nil {
		conn.Close()
		return "", err
	}
	r := bufio.NewReader(sc)
	if initiator {
		err = selectProto(sc, r, protoYamux)
	} else {
		_, err = handleSelect(sc, r, protoYamux)
	}
	if err != nil {
		conn.Close()
		return "", fmt.Errorf("muxer negotiation: %w", err)
	}
	mux := &readerConn{secureConn: sc, r: r} // yamux frames may already sit in r behind the agreement
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = os.Stderr
	cfg.EnableKeepAlive = false
	var sess *yamux.Session
	if initiator {
		sess, err = yamux.Client(mux, cfg)
	} else {
		sess, err = yamux.Server(mux, cfg)
	}
	if err != nil {
		conn.Close()
		return "", err
	}
	connsMu.Lock()
	conns[remote] = sess
	connsMu.Unlock()
	dir := "inbound"
	if initiator {
		dir = "outbound"
	}
	emit(map[string]interface{}{"event": "connection:open", "peer": remote, "direction": dir})
	go acceptStreams(sess, remote)
	go identifyPeer(sess, remote)
	return remote, nil
}

func acceptStreams(sess *yamux.Session, remote string) {
	for {
		s, err := sess.AcceptStream()
		if err != nil {
			connsMu.Lock()
			if conns[remote] == sess {
				delete(conns, remote)
			}
			connsMu.Unlock()
			emit(map[string]interface{}{"event": "connection:close", "peer": remote})
			return
		}
		go serveStream(s, remote)
	}
}

func serveStream(s *yamux.Stream, remote string) {
	defer s.Close()
	r := bufio.NewReader(s)
	proto, err := handleSelect(s, r, protoPing, protoEcho, protoID)
	if err != nil {
		return
	}
	switch proto {
	case protoPing:
		buf := make([]byte, 32)
		for {
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	case protoEcho:
		_, _ = io.Copy(s, r)
	case protoID:
		_, _ = s.Write(identifyMessage(s.RemoteAddr()))
	}
}

func identifyMessage(observed net.Addr) []byte {
	var m []byte
	m = appendField(m, 5, []byte("ipfs/0.1.0"))
	m = appendField(m, 6, []byte(agent))
	m = appendField(m, 1, pubProto)
	host, port, _ := net.SplitHostPort(listenAddr)
	p, _ := strconv.Atoi(port)
	m = appendField(m, 2, multiaddrBytesIP4TCP(net.ParseIP(host), p))
	if ta, ok := observed.(*net.TCPAddr); ok && ta.IP.To4() != nil {
		m = appendField(m, 4, multiaddrBytesIP4TCP(ta.IP, ta.Port))
	}
	for _, proto := range []string{protoID, protoPing, protoEcho} {
		m = appendField(m, 3, []byte(proto))
	}
	return append(appendUvarint(nil, uint64(len(m))), m...)
}

func openStream(remote, proto string) (*yamux.Stream, *bufio.Reader, error) {
	connsMu.Lock()
	sess := conns[remote]
	connsMu.Unlock()
	if sess == nil {
		return nil, nil, fmt.Errorf("not connected to %s", remote)
	}
	s, err := sess.OpenStream()
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReader(s)
	if err := selectProto(s, r, proto); err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, r, nil
}

func identifyPeer(sess *yamux.Session, remote string) {
	s, r, err := openStream(remote, protoID)
	if err != nil {
		logf("identify %s: %v", remote, err)
		return
	}
	defer s.Close()
	l, err := binary.ReadUvarint(r)
	if err != nil || l > 64*1024 {
		logf("identify %s: bad length (%v)", remote, err)
		return
	}
	msg := make([]byte, l)
	if _, err := io.ReadFull(r, msg); err != nil {
		logf("identify %s: %v", remote, err)
		return
	}
	f, err := parseFields(msg)
	if err != nil {
		logf("identify %s: %v", remote, err)
		return
	}
	str := func(k int) string {
		if len(f[k]) == 0 {
			return ""
		}
		return string(f[k][0])
	}
	protos, addrs := []string{}, []string{}
	for _, p := range f[3] {
		protos = append(protos, string(p))
	}
	for _, a := range f[2] {
		addrs = append(addrs, multiaddrString(a))
	}
	keyMatches := len(f[1]) == 1 && peerIDOf(f[1][0]) == remote
	emit(map[string]interface{}{"event": "identify", "peer": remote, "protocols": protos,
		"agent_version": str(6), "protocol_version": str(5), "listen_addrs": addrs, "key_matches": keyMatches})
}

// ---- commands ----

type command struct {
	Cmd            string `json:"cmd"`
	ID             int    `json:"id"`
	Target         string `json:"target"`
	Protocol       string `json:"protocol"`
	Streams        int    `json:"streams"`
	BytesPerStream int    `json:"bytes_per_stream"`
}

func result(c command, err error, fields map[string]interface{}) {
	if fields == nil {
		fields = map[string]interface{}{}
	}
	fields["event"], fields["id"], fields["ok"] = "result", c.ID, err == nil
	if err != nil {
		fields["error"] = err.Error()
		if errors.Is(err, errNA) {
			fields["code"] = "na"
		}
	}
	emit(fields)
}

func dial(target string) (string, error) {
	// /ip4/HOST/tcp/PORT/p2p/ID
	parts := strings.Split(strings.TrimPrefix(target, "/"), "/")
	if len(parts) != 6 || parts[0] != "ip4" || parts[2] != "tcp" || parts[4] != "p2p" {
		return "", fmt.Errorf("unsupported multiaddr %s", target)
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(parts[1], parts[3]), 10*time.Second)
	if err != nil {
		return "", err
	}
	return upgrade(conn, true, parts[5])
}

func ping(target string) (float64, error) {
	s, r, err := openStream(target, protoPing)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	buf, back := make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(buf)
	start := time.Now()
	if _, err := s.Write(buf); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(r, back); err != nil {
		return 0, err
	}
	if !bytes.Equal(buf, back) {
		return 0, errors.New("ping answer differs")
	}
	return float64(time.Since(start).Microseconds()) / 1000, nil
}

// One echo stream: sends n random bytes while reading the echo back, then closes; compares sha256.
// The FIN goes only after the whole echo is in: this hashicorp/yamux (2019) answers Read with EOF
// on a stream we half-closed whenever its buffer is momentarily empty, so a half-close first would
// cut the echo short on our side (go-yamux, go-libp2p's fork, does not have that bug). The agent's
// echo server ends its side only after our FIN, so that close is still exercised.
func echoOne(target string, n int) error {
	s, r, err := openStream(target, protoEcho)
	if err != nil {
		return err
	}
	defer s.Close()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		for off := 0; off < n; off += 64 * 1024 {
			end := off + 64*1024
			if end > n {
				end = n
			}
			if _, err := s.Write(data[off:end]); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	h := sha256.New()
	got, err := io.CopyN(h, r, int64(n))
	if err != nil {
		return fmt.Errorf("echo returned %d of %d bytes: %w", got, n, err)
	}
	if err := <-werr; err != nil {
		return err
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(h.Sum(nil), want[:]) {
		return errors.New("sha256 of the echo differs from what was sent")
	}
	return s.Close()
}

func run(c command) {
	switch c.Cmd {
	case "dial":
		remote, err := dial(c.Target)
		result(c, err, map[string]interface{}{"peer": remote, "direction": "outbound"})
	case "ping":
		rtt, err := ping(c.Target)
		result(c, err, map[string]interface{}{"rtt_ms": rtt})
	case "open":
		s, _, err := openStream(c.Target, c.Protocol)
		if err == nil {
			s.Close()
		}
		result(c, err, map[string]interface{}{"protocol": c.Protocol})
	case "echo":
		var wg sync.WaitGroup
		errs := make(chan error, c.Streams)
		for i := 0; i < c.Streams; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := echoOne(c.Target, c.BytesPerStream); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		err := <-errs
		result(c, err, map[string]interface{}{"streams": c.Streams, "bytes": c.Streams * c.BytesPerStream})
	case "stop":
		result(c, nil, nil)
		os.Exit(0)
	default:
		result(c, fmt.Errorf("unknown command %q", c.Cmd), nil)
	}
}

func main() {
	seed := flag.String("seed", "", "Ed25519 seed, 64 hex digits (random if empty)")
	flag.Parse()
	s := make([]byte, ed25519.SeedSize)
	if *seed != "" {
		b, err := hex.DecodeString(*seed)
		if err != nil || len(b) != ed25519.SeedSize {
			logf("--seed needs 64 hex digits")
			os.Exit(2)
		}
		s = b
	} else {
		_, _ = rand.Read(s)
	}
	priv = ed25519.NewKeyFromSeed(s)
	pubProto = ed25519KeyProto(priv.Public().(ed25519.PublicKey))
	selfID = peerIDOf(pubProto)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		logf("listen: %v", err)
		os.Exit(1)
	}
	listenAddr = ln.Addr().String()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				if _, err := upgrade(conn, false, ""); err != nil {
					logf("inbound upgrade: %v", err)
				}
			}()
		}
	}()
	host, port, _ := net.SplitHostPort(listenAddr)
	emit(map[string]interface{}{"event": "ready", "peer_id": selfID,
		"addrs": []string{fmt.Sprintf("/ip4/%s/tcp/%s/p2p/%s", host, port, selfID)}})

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			emit(map[string]interface{}{"event": "result", "ok": false, "error": "bad command: " + err.Error()})
			continue
		}
		go run(c)
	}
}
