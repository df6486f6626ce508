/* Stand-in for cloudflare/cloudflared, as far as jamjam's container uses it:
 *   cloudflared [--no-autoupdate] tunnel [--no-autoupdate] --metrics ADDR run
 *       serves ADDR/ready (200 once it has a token in TUNNEL_TOKEN, the way the plan passes it)
 *   cloudflared tunnel --metrics ADDR ready
 *       the healthcheck: exit 0 when ADDR/ready answers 200
 * It never contacts Cloudflare; it logs only whether a token arrived and its length, never
 * the token. */
#include "common.h"
#include <signal.h>

static int split(const char *addr, char *host, size_t hsize, char *port, size_t psize) {
  const char *colon = strrchr(addr, ':');
  if (!colon || (size_t)(colon - addr) >= hsize || strlen(colon + 1) >= psize) return -1;
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = 0;
  strcpy(port, colon + 1);
  return 0;
}

static void on_term(int sig) {
  (void)sig;
  _exit(0);
}

int main(int argc, char **argv) {
  signal(SIGTERM, on_term);
  const char *metrics = opt(argc, argv, "--metrics", "127.0.0.1:20241");
  char host[128], port[16];
  if (!has_word(argc, argv, "tunnel") || split(metrics, host, sizeof host, port, sizeof port)) {
    fprintf(stderr, "cloudflared stand-in: usage: cloudflared tunnel --metrics HOST:PORT run|ready\n");
    return 2;
  }
  if (has_word(argc, argv, "ready")) {
    int fd = open_socket(host, port, SOCK_STREAM, 0);
    if (fd < 0) return 1;
    const char *req = "GET /ready HTTP/1.0\r\n\r\n";
    char buf[512];
    int ok = write(fd, req, strlen(req)) > 0 && read_head(fd, buf, sizeof buf) > 0 &&
             strncmp(buf, "HTTP/1.0 200", 12) == 0;
    close(fd);
    return ok ? 0 : 1;
  }
  if (!has_word(argc, argv, "run")) {
    fprintf(stderr, "cloudflared stand-in: only 'tunnel run' and 'tunnel ready' are stood in\n");
    return 2;
  }
  const char *token = getenv("TUNNEL_TOKEN");
  if (!token || !*token) {
    say("cloudflared: no TUNNEL_TOKEN in the environment; not ready");
  } else {
    say("cloudflared: TUNNEL_TOKEN present (%zu characters); tunnel ready", strlen(token));
  }
  signal(SIGPIPE, SIG_IGN);
  int fd = open_socket(host, port, SOCK_STREAM, 1);
  if (fd < 0 || listen(fd, 16) < 0) {
    say("cloudflared: cannot serve metrics on %s: %s", metrics, strerror(errno));
    return 1;
  }
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    char buf[1024];
    read_head(c, buf, sizeof buf);
    const char *reply = token && *token ? "HTTP/1.0 200 OK\r\n\r\n{\"readyConnections\":1}\n"
                                        : "HTTP/1.0 503 Service Unavailable\r\n\r\n";
    (void)!write(c, reply, strlen(reply));
    close(c);
  }
}
