/* cli.h - the command-line client: every `tarn` subcommand except `serve`.
 *
 * The client is a plain HTTP client of the server (docs/http-api.md): it uses
 * no other module of Tarn, the way the curl tool uses only libcurl's public
 * API, so anything it does can also be done with curl.
 */
#ifndef TARN_CLI_H
#define TARN_CLI_H

/* Runs one client command. argv[0] is the program name, argv[1] the
 * subcommand (ingest, query, tables, describe, flush, status, help) or a
 * global option. Prints results to stdout and at most one error line
 * ("tarn: ...") to stderr. Returns the process exit status: 0 success,
 * 1 failure (server error, connection failure, bad input), 2 usage error. */
int tarn_cli_main(int argc, char **argv);

#endif
