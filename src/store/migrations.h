// SPDX-License-Identifier: MIT
/* migrations.h - the numbered schema migrations compiled in from migrations/NNNN_*.sql. */
#ifndef HERALD_STORE_MIGRATIONS_H
#define HERALD_STORE_MIGRATIONS_H

typedef struct herald__migration {
    int version;
    const char *name;
    const char *sql;
} herald__migration;

extern const herald__migration herald__migrations[];
extern const int herald__n_migrations;

#endif
