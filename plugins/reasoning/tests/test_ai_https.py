"""The providers' HTTP engine (libs/ai-common) beyond plain HTTP, through a real chorus-agent: HTTPS with
certificate and host name verification, kept-alive connections, and the proxy environment (https_proxy with CONNECT, http_proxy
with absolute-form requests, no_proxy)."""
import base64
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

from ai_harness import AiTestCase
from harness import require
from test_ai import ollama_cfg, openai_cfg

OPENSSL = shutil.which("openssl")


def make_certificate(directory, name):
    """A self-signed certificate for `name` (and 127.0.0.1); returns (cert, key) paths."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1", "-days", "2",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


class Proxy:
    """An HTTP proxy as far as the engine needs one: CONNECT tunnels, and absolute-form requests, which it
    forwards in origin form. Records each request line."""

    def __init__(self):
        self.lines = []
        self.heads = []  # each request's header block, as text
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                more = client.recv(4096)
                if not more:
                    return
                head += more
            line, _, rest = head.partition(b"\r\n")
            method, target, version = line.decode().split(" ")
            with self.lock:
                self.lines.append(f"{method} {target}")
                self.heads.append(head.partition(b"\r\n\r\n")[0].decode())
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)))
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                leftover = head.partition(b"\r\n\r\n")[2]
            else:
                origin = target.split("://", 1)[1]
                authority, _, path = origin.partition("/")
                host, _, port = authority.rpartition(":")
                upstream = socket.create_connection((host, int(port)))
                # One request per connection: the server closes after its answer, and so does the proxy.
                fields, _, body = rest.partition(b"\r\n\r\n")
                fields = [f for f in fields.split(b"\r\n") if not f.lower().startswith(b"connection:")]
                leftover = (f"{method} /{path} {version}\r\n".encode() + b"\r\n".join(fields + [b"Connection: close"]) +
                            b"\r\n\r\n" + body)
            with upstream:
                upstream.sendall(leftover)
                self._pipe(client, upstream)

    @staticmethod
    def _pipe(a, b):
        peers = {a: b, b: a}
        while True:
            ready, _, _ = select.select(list(peers), [], [], 30)
            if not ready:
                return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                peers[s].sendall(data)

    def close(self):
        self.sock.close()


@require("openssl", None if OPENSSL else "the openssl command (to make a test certificate)")
class Https(AiTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="chorus-https-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cert, key = make_certificate(self.dir, "localhost")
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(self.cert, key)

    def https_fake(self, kind, name, **kw):
        f = self.fake(kind, name, tls=self.tls, tls_name="localhost", **kw)
        self.assertTrue(f.base.startswith("https://localhost:"))
        return f

    def proxy(self):
        p = Proxy()
        self.addCleanup(p.close)
        return p

    def test_https_with_a_trusted_certificate(self):
        a = self.https_fake("openai", "tls-A", api_key="sk-test-SECRET-123")
        agent = self.start_ai({"ai-openai": openai_cfg(a), "reasoning": {"config": {}}},
                              env={"SSL_CERT_FILE": self.cert, "no_proxy": "*"})
        self.assertEqual(self.chat_result(agent, stream=True), (200, "ai-openai", "tls-A says: hello world"))
        self.assertEqual(self.chat_result(agent), (200, "ai-openai", "tls-A says: hello world"))
        self.assertEqual(a.chat_requests()[0]["headers"]["Authorization"], "Bearer sk-test-SECRET-123")

    def test_an_untrusted_certificate_is_refused(self):
        a = self.https_fake("openai", "tls-B")
        # The system's CAs only: the self-signed certificate is not among them.
        agent = self.start_ai({"ai-openai": openai_cfg(a, max_retries=0), "reasoning": {"config": {}}},
                              env={"no_proxy": "*"}, wait=False)
        agent.wait_ready()
        status, _, message = self.chat_result(agent)
        self.assertNotEqual(status, 200)
        self.assertIn("certificate verify failed", message)
        self.assertEqual(a.chat_requests(), [])

    def test_https_through_a_connect_proxy_and_no_proxy(self):
        a = self.https_fake("openai", "tls-C")
        p = self.proxy()
        proxy_url = p.url().replace("http://", "http://alice:s%40cret@")
        agent = self.start_ai({"ai-openai": openai_cfg(a), "reasoning": {"config": {}}},
                              env={"SSL_CERT_FILE": self.cert, "https_proxy": proxy_url, "no_proxy": ""})
        self.assertEqual(self.chat_result(agent), (200, "ai-openai", "tls-C says: hello world"))
        self.assertIn(f"CONNECT localhost:{a.port}", p.lines)
        # The proxy URL's user info, percent-decoded, as Basic credentials on the CONNECT.
        self.assertIn("Proxy-Authorization: Basic " + base64.b64encode(b"alice:s@cret").decode(), p.heads[0])

        # no_proxy names the host: straight to the server, past a proxy that is not even there.
        b = self.https_fake("openai", "tls-D")
        agent2 = self.start_ai({"ai-openai": openai_cfg(b), "reasoning": {"config": {}}},
                               env={"SSL_CERT_FILE": self.cert, "https_proxy": "http://127.0.0.1:9",
                                    "no_proxy": "example.org, localhost"})
        self.assertEqual(self.chat_result(agent2), (200, "ai-openai", "tls-D says: hello world"))

    def test_sequential_requests_share_a_kept_alive_connection(self):
        for fake, cfg, env in ((self.https_fake("openai", "keep-A"), openai_cfg, {"SSL_CERT_FILE": self.cert}),
                               (self.fake("ollama", "keep-O"), ollama_cfg, {})):
            agent = self.start_ai({f"ai-{fake.kind}": cfg(fake), "reasoning": {"config": {}}},
                                  env=dict(env, no_proxy="*"))
            for _ in range(6):
                self.assertEqual(self.chat_result(agent)[0], 200)
            # One connection for the chats; the periodic health probe may have needed a second.
            self.assertLessEqual(fake.accepted, 2, fake.kind)
            self.assertEqual(len(fake.chat_requests()), 6)

            # The server drops its idle connections: the next request notices and opens a new one.
            with fake.lock:
                conns = list(fake.connections)
            for c in conns:
                c.shutdown(socket.SHUT_RDWR)
            before = fake.accepted
            self.assertEqual(self.chat_result(agent)[0], 200)
            self.assertGreater(fake.accepted, before)

    def test_plain_http_through_a_proxy_asks_for_the_absolute_url(self):
        o = self.fake("ollama", "plain-O")
        p = self.proxy()
        agent = self.start_ai({"ai-ollama": ollama_cfg(o), "reasoning": {"config": {}}},
                              env={"http_proxy": p.url(), "no_proxy": ""})
        self.assertEqual(self.chat_result(agent), (200, "ai-ollama", "plain-O says: hello world"))
        self.assertIn(f"POST http://127.0.0.1:{o.port}/api/chat", p.lines)

    def test_user_info_in_the_endpoint_is_sent_as_basic_credentials(self):
        o = self.fake("ollama", "basic-O")
        endpoint = o.base.replace("http://", "http://bob:pa%3Ass@")
        agent = self.start_ai({"ai-ollama": ollama_cfg(o, endpoint=endpoint), "reasoning": {"config": {}}},
                              env={"no_proxy": "*"})
        self.assertEqual(self.chat_result(agent), (200, "ai-ollama", "basic-O says: hello world"))
        sent = o.chat_requests()[0]["headers"]
        self.assertEqual(sent["Authorization"], "Basic " + base64.b64encode(b"bob:pa:ss").decode())


if __name__ == "__main__":
    unittest.main()
