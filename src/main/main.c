/* main.c - the tarn binary: `tarn serve` runs the server (server/), every
 * other subcommand is a client of its HTTP API (cli/). */
#include <string.h>

#include "cli/cli.h"
#include "server/server.h"

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) return tarn_server_main(argc - 1, argv + 1);
    return tarn_cli_main(argc, argv);
}
