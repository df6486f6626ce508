/* Stand-in for jamjam's signaling-server: `signaling-server --port P --host H`.
 * Accepts TCP on H:P and answers a WebSocket upgrade with 101 (and anything else with 200),
 * logging each upgrade with its Host header, so the rehearsal can prove echo-server reached
 * ws://signaling-server:<port> over the bridge network. */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

static void on_term(int sig) {
  (void)sig;
  _exit(0);
}

int main(int argc, char **argv) {
  signal(SIGTERM, on_term);
  const char *port = opt(argc, argv, "--port", "8080");
  const char *host = opt(argc, argv, "--host", "0.0.0.0");
  signal(SIGCHLD, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  int fd = open_socket(host, port, SOCK_STREAM, 1);
  if (fd < 0 || listen(fd, 64) < 0) {
    say("signaling-server: cannot listen on %s:%s: %s", host, port, strerror(errno));
    return 1;
  }
  say("signaling-server: listening on %s:%s (RUST_LOG=%s)", host, port,
      getenv("RUST_LOG") ? getenv("RUST_LOG") : "unset");
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    char buf[4096];
    if (read_head(c, buf, sizeof buf) > 0) {
      if (strcasestr(buf, "Upgrade: websocket")) {
        const char *h = strcasestr(buf, "\r\nHost: ");
        char who[128] = "?";
        if (h) sscanf(h + 8, "%127[^\r\n]", who);
        say("signaling-server: websocket upgrade for host %s", who);
        const char *reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\n\r\n";
        (void)!write(c, reply, strlen(reply));
      } else {
        const char *reply = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
        (void)!write(c, reply, strlen(reply));
      }
    }
    close(c);
  }
}
