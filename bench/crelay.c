// crelay: a minimal stdio <-> TCP relay in C (poll, read, write), the reference
// floor for what one extra relay process costs on the machine. bench/run.sh
// builds it when a C compiler is present: procbench -relay-cmd "crelay {addr}".
// `crelay -exec CMD ARGS...` relays stdio to CMD's stdin and stdout through
// pipes instead (a blocking thread per direction): the floor for one process hop between an editor and a stdio
// server (procbench -mux-relay-cmd "crelay -exec", next to mux mode).
#include <poll.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
static char buf[1<<18];
static char buf2[1<<18];
static int childin;
// pump copies from to to with blocking read and write until EOF or error.
static void pump(int from, int to, char *b) {
  for (;;) {
    ssize_t n = read(from, b, sizeof buf);
    if (n <= 0) return;
    for (ssize_t o = 0; o < n;) { ssize_t m = write(to, b+o, n-o); if (m < 0) return; o += m; }
  }
}
static void *up(void *arg) { (void)arg; pump(0, childin, buf2); close(childin); return NULL; }
// execrelay: one blocking thread per direction (a single poll loop with
// blocking writes could deadlock against a server that is itself blocked
// writing its answers).
static int execrelay(char **argv) {
  int in[2], out[2];
  if (pipe(in) < 0 || pipe(out) < 0) { perror("pipe"); return 1; }
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 1; }
  if (pid == 0) {
    dup2(in[0], 0); dup2(out[1], 1);
    close(in[0]); close(in[1]); close(out[0]); close(out[1]);
    execvp(argv[0], argv); perror("exec"); _exit(127);
  }
  close(in[0]); close(out[1]);
  childin = in[1];
  pthread_t t;
  if (pthread_create(&t, NULL, up, NULL) != 0) { perror("pthread_create"); return 1; }
  pump(out[0], 1, buf);
  return 0;
}
int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "-exec") == 0) return execrelay(argv + 2);
  char *a = strdup(argv[1]); char *c = strrchr(a, ':'); *c = 0;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {0}; sa.sin_family = AF_INET; sa.sin_port = htons(atoi(c+1)); inet_pton(AF_INET, a, &sa.sin_addr);
  if (connect(s, (struct sockaddr*)&sa, sizeof sa) < 0) { perror("connect"); return 1; }
  int one = 1; setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct pollfd p[2] = {{0, POLLIN}, {s, POLLIN}};
  int inopen = 1;
  for (;;) {
    p[0].fd = inopen ? 0 : -1;
    if (poll(p, 2, -1) < 0) return 1;
    if (p[0].revents) { ssize_t n = read(0, buf, sizeof buf); if (n <= 0) { shutdown(s, SHUT_WR); inopen = 0; } else { for (ssize_t o = 0; o < n;) { ssize_t m = write(s, buf+o, n-o); if (m < 0) return 1; o += m; } } }
    if (p[1].revents) { ssize_t n = read(s, buf, sizeof buf); if (n <= 0) return 0; for (ssize_t o = 0; o < n;) { ssize_t m = write(1, buf+o, n-o); if (m < 0) return 1; o += m; } }
  }
}
