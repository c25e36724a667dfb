// SPDX-License-Identifier: MIT
/*
 * outbox_worker.c - the child program of test_outbox_crash.c (not a Criterion test): publishes
 * the outbox of the service store at argv[2] to the bus store at argv[3] until nothing is
 * pending, then exits 0.
 *
 *   outbox_worker flush   SERVICE_URL BUS_URL   herald_outbox_flush in a loop
 *   outbox_worker flusher SERVICE_URL BUS_URL   the flusher thread (herald_outbox_flusher_*)
 *
 * The test SIGKILLs it mid-flush, or exec's it with HERALD_FAULT=<point> so that the library
 * kills it at that point (read once per process, hence exec rather than a plain fork).
 *
 * Exit codes: 0 nothing pending; 2 usage; 3 still pending after 60 s; 10 open failed;
 * 11 flusher start failed; 12 pending failed; 20 flush failed.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "herald.h"
#include "worker.h"

static int run(const char *mode, herald_store *svc, herald_store *bus)
{
    herald_outbox_flusher *f = NULL;
    if (strcmp(mode, "flusher") == 0 && herald_outbox_flusher_start(svc, bus, &f) < 0) {
        fprintf(stderr, "outbox_worker: flusher start: %s\n", herald_last_error());
        return 11;
    }
    int code = 3;
    int64_t end = mono_ms() + 60000;
    while (mono_ms() < end) {
        if (!f && herald_outbox_flush(svc, bus, NULL) < 0) {
            fprintf(stderr, "outbox_worker: flush: %s\n", herald_last_error());
            code = 20;
            break;
        }
        int64_t n = -1;
        if (herald_outbox_pending(svc, &n) < 0) {
            fprintf(stderr, "outbox_worker: pending: %s\n", herald_last_error());
            code = 12;
            break;
        }
        if (n == 0) {
            code = 0;
            break;
        }
        if (f)
            sleep_ms(5);
    }
    herald_outbox_flusher_stop(f);
    if (code == 3)
        fprintf(stderr, "outbox_worker: rows still pending after 60 s\n");
    return code;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "flush") != 0 && strcmp(argv[1], "flusher") != 0)) {
        fprintf(stderr, "usage: outbox_worker flush|flusher SERVICE_URL BUS_URL\n");
        return 2;
    }
    herald_store *svc = NULL, *bus = NULL;
    if (herald_store_open(argv[2], NULL, &svc) < 0 || herald_store_open(argv[3], NULL, &bus) < 0) {
        fprintf(stderr, "outbox_worker: open: %s\n", herald_last_error());
        herald_store_close(svc);
        return 10;
    }
    int code = run(argv[1], svc, bus);
    herald_store_close(bus);
    herald_store_close(svc);
    return code;
}
