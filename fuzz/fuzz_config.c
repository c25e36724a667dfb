// SPDX-License-Identifier: MIT
/*
 * fuzz_config.c - herald_config_check on a herald.jsonc file (no store: it changes nothing).
 * The input is written to a file in a private temp dir, then checked. Properties: no crash, no
 * leak; a refused file gets a message that names it.
 */
#include "fuzz_common.h"

#include <string.h>
#include <unistd.h>

static char dir[64], path[256];

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        snprintf(dir, sizeof dir, "/tmp/herald-fuzz-config-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        snprintf(path, sizeof path, "%s/herald.jsonc", dir);
        atexit(cleanup);
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    herald__err_clear();
    int rc = herald_config_check(NULL, path);
    if (rc < 0)
        FUZZ_CHECK(strcmp(herald_last_error(), "no error") != 0);
    return 0;
}
