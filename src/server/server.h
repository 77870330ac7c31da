/* server.h - `tarn serve`: the HTTP server and its lifecycle. */
#ifndef TARN_SERVER_H
#define TARN_SERVER_H

/* Runs the server until SIGTERM / SIGINT; argv[0] is "serve". Returns the
 * process exit code: 0 after a clean stop, non-zero on a start-up error or
 * when the durable log failed. */
int tarn_server_main(int argc, char **argv);

#endif
