"""Fake Ollama and OpenAI-compatible servers for the AI plugin tests (Python stdlib only).

They speak the real wire protocols: Ollama's /api/chat, /api/generate, /api/tags with NDJSON
streaming (application/x-ndjson, chunked) and {"error": "..."} bodies; OpenAI's
/v1/chat/completions with SSE streaming ("data: {...}\\n\\n" ... "data: [DONE]\\n\\n"), /v1/models,
bearer auth and {"error": {"message", "type", "param", "code"}} bodies.

Behaviour is set per server through attributes (tests run the server in-process):
  mode: ok | malformed | truncate | status | midstream_error | oversized | hang | close
  status / status_body / retry_after: for mode "status" (e.g. 429, 500)
  fail_first: answer the first N chat/generate requests with `status` (then behave as `mode`);
              model-list requests (the providers' health probes) do not count
  token_delay: seconds between streamed tokens (keeps streams in flight for swap tests)
  delay: seconds before the answer starts
Every request is recorded in `requests` (method, path, headers, parsed JSON body); `active` counts the
chat/generate requests being answered (not the model-list requests of the providers' health probes).
Answers name the server: content is "<name> says: hello world" and the model echoes the request.
"""
import http.server
import json
import socket
import socketserver
import threading
import time

TOKENS = ["hello", " ", "world"]
CHAT_PATHS = ("/api/chat", "/v1/chat/completions", "/api/generate")


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


class FakeServer:
    def __init__(self, kind, name, api_key=None, port=0, host="127.0.0.1", tls=None, tls_name=None):
        """host: the address to listen on (e.g. a bridge's, for agents in network namespaces).
        tls: an ssl.SSLContext to serve HTTPS with; tls_name: the host name its certificate names, used in
        `base`."""
        assert kind in ("ollama", "openai")
        self.kind = kind
        self.name = name
        self.api_key = api_key
        self.mode = "ok"
        self.status = 500
        self.status_body = None
        self.retry_after = None
        self.fail_first = 0
        self.token_delay = 0.0
        self.delay = 0.0
        self.models = ["llama3.1:latest", "phi3:latest"] if kind == "ollama" else ["gpt-4o-mini", "meta/llama-3.1-8b-instruct"]
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)  # notified on every request
        self.requests = []
        self.chat_count = 0  # chat/generate requests so far (what fail_first counts)
        self.active = 0
        self.connections = set()  # open client connections, cut by close()
        self.accepted = 0  # client connections so far (what keep-alive saves)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            wbufsize = 65536  # headers + body in one segment (no Nagle/delayed-ACK stalls)

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with server.lock:
                    server.connections.add(self.connection)
                    server.accepted += 1

            def finish(self):
                with server.lock:
                    server.connections.discard(self.connection)
                super().finish()

            def do_GET(self):
                server._handle(self, None)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n) if n else b""
                server._handle(self, raw)

        class Threading(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            request_queue_size = 256
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass  # clients that hang up (timeouts under test) are expected

        self.host = host
        self.httpd = Threading((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self.tls_name = tls_name
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self):
        origin = f"https://{self.tls_name}:{self.port}" if self.tls_name else f"http://{self.host}:{self.port}"
        return origin + ("/v1" if self.kind == "openai" else "")

    def close(self):
        """Stops listening and cuts every open connection (keep-alive ones included): the server is down."""
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            conns = list(self.connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def reset(self):
        with self.lock:
            self.requests = []
            self.chat_count = 0

    def chat_requests(self):
        with self.lock:
            return [r for r in self.requests if r["path"] in CHAT_PATHS]

    def wait_request(self, paths, timeout=20):
        """The first recorded request to one of `paths`, waiting up to `timeout` seconds for it."""
        with self.lock:
            self.arrived.wait_for(lambda: any(r["path"] in paths for r in self.requests), timeout)
            return next((r for r in self.requests if r["path"] in paths), None)

    def probe_requests(self):
        with self.lock:
            return [r for r in self.requests if r["path"] in ("/api/tags", "/v1/models")]

    # ------------------------------------------------------------------ plumbing
    def _send(self, h, status, ctype, body, extra=None):
        data = body.encode() if isinstance(body, str) else body
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def _start_chunked(self, h, ctype):
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Transfer-Encoding", "chunked")
        if ctype == "text/event-stream":
            h.send_header("Cache-Control", "no-cache")
        h.end_headers()
        h.wfile.flush()

    def _chunk(self, h, data):
        data = data.encode() if isinstance(data, str) else data
        h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        h.wfile.flush()

    def _end_chunked(self, h):
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def _error(self, h, status, message, code=None):
        if self.kind == "ollama":
            body = json.dumps({"error": message})
            self._send(h, status, "application/json; charset=utf-8", body)
        else:
            body = json.dumps({"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                                         "param": None, "code": code}})
            extra = {"retry-after": str(self.retry_after)} if (status == 429 and self.retry_after is not None) else None
            self._send(h, status, "application/json", body, extra)

    def _handle(self, h, raw):
        path = h.path.split("?")[0]
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        with self.lock:
            self.requests.append({"method": h.command, "path": path, "headers": dict(h.headers), "body": body})
            chat = path in CHAT_PATHS
            self.chat_count += chat
            n = self.chat_count
            self.arrived.notify_all()
            self.active += chat
        try:
            self._route(h, path, body, n)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self.lock:
                self.active -= chat

    def _route(self, h, path, body, n):
        counted = path in CHAT_PATHS
        if self.delay:
            time.sleep(self.delay)
        if self.kind == "openai" and self.api_key is not None:
            if h.headers.get("Authorization") != f"Bearer {self.api_key}":
                return self._error(h, 401, "Incorrect API key provided", "invalid_api_key")
        if (counted and n <= self.fail_first) or self.mode == "status":
            default = "Rate limit reached" if self.status == 429 else "internal server error"
            return self._error(h, self.status, self.status_body or default,
                               "rate_limit_exceeded" if self.status == 429 else None)
        if self.mode == "hang":
            time.sleep(30)
            return
        if self.mode == "close":
            h.close_connection = True
            h.connection.shutdown(2)
            return
        if self.kind == "ollama":
            if path == "/api/tags" and h.command == "GET":
                return self._ollama_tags(h)
            if path in ("/api/chat", "/api/generate") and h.command == "POST":
                return self._ollama_chat(h, body, path == "/api/generate")
        else:
            if path == "/v1/models" and h.command == "GET":
                return self._openai_models(h)
            if path == "/v1/chat/completions" and h.command == "POST":
                return self._openai_chat(h, body)
        self._send(h, 404, "text/plain; charset=utf-8", "404 page not found")

    def _content(self, model):
        return f"{self.name} says: " + "".join(TOKENS)

    # ------------------------------------------------------------------ ollama
    def _ollama_tags(self, h):
        models = [{"name": m, "model": m, "modified_at": "2024-07-23T12:00:00.000000000Z", "size": 4661224676,
                   "digest": "42182419e9508c30c4b1fe55015f06b65f4ca4b9e28a744be55008d21998a093",
                   "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                               "parameter_size": "8.0B", "quantization_level": "Q4_0"}} for m in self.models]
        self._send(h, 200, "application/json; charset=utf-8", json.dumps({"models": models}))

    def _ollama_chat(self, h, body, generate):
        if not isinstance(body, dict):
            return self._error(h, 400, "invalid character 'x' looking for beginning of value")
        model = body.get("model", "")
        if model not in self.models and model.split(":")[0] + ":latest" not in self.models:
            return self._error(h, 404, f'model "{model}" not found, try pulling it first')
        stream = body.get("stream", True)  # Ollama streams unless told otherwise
        content = self._content(model)
        tool_calls = None
        if not generate and body.get("tools"):
            tool_calls = [{"function": {"name": body["tools"][0]["function"]["name"], "arguments": {"city": "Paris"}}}]
        final = {"model": model, "created_at": _now(), "done_reason": "stop", "done": True,
                 "total_duration": 4883583458, "load_duration": 1334875, "prompt_eval_count": 26,
                 "prompt_eval_duration": 342546000, "eval_count": 3, "eval_duration": 4535599000}

        def piece(text, calls=None):
            d = {"model": model, "created_at": _now()}
            if generate:
                d["response"] = text
            else:
                d["message"] = {"role": "assistant", "content": text}
                if calls:
                    d["message"]["tool_calls"] = calls
            d["done"] = False
            return d

        if not stream:
            time.sleep(self.token_delay * 4)
            if self.mode == "malformed":
                return self._send(h, 200, "application/json; charset=utf-8", '{"model": "x", "message": {"content": ')
            if self.mode == "oversized":
                return self._send(h, 200, "application/json; charset=utf-8", json.dumps(piece("x" * (3 << 20))))
            d = piece(content, tool_calls)
            d.update(final)
            if generate:
                d["context"] = [1, 2, 3]
            return self._send(h, 200, "application/json; charset=utf-8", json.dumps(d))
        self._start_chunked(h, "application/x-ndjson")
        parts = [f"{self.name} says: "] + TOKENS
        for i, t in enumerate(parts):
            if self.mode == "malformed" and i == 2:
                self._chunk(h, "{this is not json\n")
                return self._end_chunked(h)
            if self.mode == "midstream_error" and i == 2:
                self._chunk(h, json.dumps({"error": "an unexpected error occurred while generating"}) + "\n")
                return self._end_chunked(h)
            if self.mode == "truncate" and i == 2:
                h.close_connection = True
                return  # connection closes without the terminating chunk
            if self.mode == "oversized":
                t = "x" * 65536
            self._chunk(h, json.dumps(piece(t, tool_calls if i == len(parts) - 1 else None)) + "\n")
            if self.token_delay:
                time.sleep(self.token_delay)
        if self.mode == "oversized":
            for _ in range(64):
                self._chunk(h, json.dumps(piece("y" * 65536)) + "\n")
        fin = {"model": model, "created_at": _now(), "done": True}
        fin.update(final)
        fin["message" if not generate else "response"] = {"role": "assistant", "content": ""} if not generate else ""
        self._chunk(h, json.dumps(fin) + "\n")
        self._end_chunked(h)

    # ------------------------------------------------------------------ openai
    def _openai_models(self, h):
        data = [{"id": m, "object": "model", "created": 1686935002, "owned_by": "organization-owner"} for m in self.models]
        self._send(h, 200, "application/json", json.dumps({"object": "list", "data": data}))

    def _openai_chat(self, h, body):
        if not isinstance(body, dict) or "messages" not in body:
            return self._error(h, 400, "'messages' is a required property")
        model = body.get("model", "")
        if model not in self.models:
            return self._error(h, 404, f"The model `{model}` does not exist or you do not have access to it.", "model_not_found")
        content = self._content(model)
        cid = "chatcmpl-9fake" + str(int(time.time() * 1000) % 100000)
        created = int(time.time())
        tool_calls = None
        if body.get("tools"):
            tool_calls = [{"id": "call_abc123", "type": "function",
                           "function": {"name": body["tools"][0]["function"]["name"], "arguments": "{\"city\":\"Paris\"}"}}]
        if not body.get("stream"):
            time.sleep(self.token_delay * 4)
            if self.mode == "malformed":
                return self._send(h, 200, "application/json", '{"id": "x", "choices": [')
            if self.mode == "oversized":
                content = "x" * (3 << 20)
            msg = {"role": "assistant", "content": None if tool_calls else content, "refusal": None}
            if tool_calls:
                msg["tool_calls"] = tool_calls
            out = {"id": cid, "object": "chat.completion", "created": created, "model": model,
                   "choices": [{"index": 0, "message": msg, "logprobs": None,
                                "finish_reason": "tool_calls" if tool_calls else "stop"}],
                   "usage": {"prompt_tokens": 19, "completion_tokens": 3, "total_tokens": 22},
                   "system_fingerprint": "fp_fake"}
            return self._send(h, 200, "application/json", json.dumps(out))
        self._start_chunked(h, "text/event-stream")

        def ev(delta, finish=None, usage=None):
            d = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "system_fingerprint": "fp_fake", "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if usage is not None:
                d["choices"] = []
                d["usage"] = usage
            return "data: " + json.dumps(d) + "\n\n"

        self._chunk(h, ev({"role": "assistant", "content": ""}))
        parts = [f"{self.name} says: "] + TOKENS
        for i, t in enumerate(parts):
            if self.mode == "malformed" and i == 2:
                self._chunk(h, "data: {not json\n\n")
                return self._end_chunked(h)
            if self.mode == "midstream_error" and i == 2:
                self._chunk(h, "data: " + json.dumps({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": None, "code": None}}) + "\n\n")
                return self._end_chunked(h)
            if self.mode == "truncate" and i == 2:
                h.close_connection = True
                return
            if self.mode == "oversized":
                t = "x" * 65536
            self._chunk(h, ev({"content": t}))
            if self.token_delay:
                time.sleep(self.token_delay)
        if self.mode == "oversized":
            for _ in range(64):
                self._chunk(h, ev({"content": "y" * 65536}))
        if tool_calls:
            self._chunk(h, ev({"tool_calls": [{"index": 0, "id": "call_abc123", "type": "function",
                                               "function": {"name": tool_calls[0]["function"]["name"], "arguments": ""}}]}))
            self._chunk(h, ev({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":\"Paris\"}"}}]}))
        self._chunk(h, ev({}, "tool_calls" if tool_calls else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            self._chunk(h, ev(None, usage={"prompt_tokens": 19, "completion_tokens": 3, "total_tokens": 22}))
        self._chunk(h, "data: [DONE]\n\n")
        self._end_chunked(h)


class FakeWebhook:
    """The model-selection webhook: POST {models, prompt} -> {model}."""

    def __init__(self, answer="phi3:latest", delay=0.0, status=200):
        self.answer, self.delay, self.status = answer, delay, status
        self.calls = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                hook.calls.append(json.loads(self.rfile.read(n) or b"null"))
                if hook.delay:
                    time.sleep(hook.delay)
                data = json.dumps({"model": hook.answer}).encode()
                try:
                    self.send_response(hook.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Threading(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.httpd = Threading(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/select"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
