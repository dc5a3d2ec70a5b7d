/* SPDX-License-Identifier: MIT */
/*
 * A library loaded on first use (dlopen) and its functions resolved into a
 * table of typed pointers: what tls-lib.c (GnuTLS) and h2-lib.c (libnghttp2)
 * have in common. Each of them declares its table as a struct with one member
 * per function, typed with DL_TABLE_FIELD (the function's own type, so every
 * call through it is checked by the compiler), lists the members with
 * DL_TABLE_SYMBOL, and defines with DL_LIBRARY_DEFINE the table, its
 * DlLibrary (the soname, from the build, and what the library is for: "TLS",
 * "HTTP/2", the first words of the message when it cannot be loaded) and its
 * two entry points, to load it and to say why it could not be.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define DL_TABLE_ERROR_MAX 512

/* A member of a table: a pointer of the type of the function prefix ## name. */
#define DL_TABLE_FIELD(prefix, name) __typeof__(prefix##name) *name;
/* An entry of a symbol list: the name to resolve and where its pointer goes in type. */
#define DL_TABLE_SYMBOL(type, prefix, name) {#prefix #name, offsetof(type, name)},

/*
 * Does not compile unless prefix ## name is a macro for table.name: the list
 * of the functions' names, mapped by hand onto the table's members so call
 * sites keep them, has every function of the table (without its macro a call
 * would go to the library directly, which nothing links).
 */
#define DL_TABLE_CHECK_NAME(table, prefix, name)                                            \
        _Static_assert(                                                                     \
            __builtin_types_compatible_p(__typeof__(prefix##name), __typeof__(table.name)), \
            #prefix #name " is called by its name: it needs a macro for " #table "." #name);

typedef struct DlSymbol {
        const char *name;
        size_t offset; /* of its pointer in the table */
} DlSymbol;

typedef struct DlLibrary {
        const char *soname;
        const char *feature;
        const DlSymbol *symbols;
        size_t n_symbols;
        void *table; /* zero until loaded, and again after a failure */
        size_t table_size;

        /* The outcome, decided once (under a lock) and kept. */
        bool decided;
        int result;
        char error[DL_TABLE_ERROR_MAX];
} DlLibrary;

/*
 * Load lib if it is not loaded yet and resolve every symbol into its table.
 * 0 on success, also on every later call. -ELIBACC when the library or one
 * of its symbols cannot be found; err (if not NULL) then gets the feature,
 * " unavailable: " and the loader's reason, e.g. "HTTP/2 unavailable:
 * libnghttp2.so.14: cannot open shared object file: No such file or
 * directory". A failure is final for the process: it is not retried, and
 * every later call fails the same way with the same text. Thread-safe. The
 * library, once loaded, stays for the life of the process (RTLD_LOCAL: its
 * symbols do not join the global namespace).
 */
int dl_library_load(DlLibrary *lib, char *err, size_t errlen);

/* Why lib cannot be loaded (the text above); NULL while it loaded or was never needed. */
const char *dl_library_unavailable_reason(DlLibrary *lib);

/*
 * The table variable table_ of type type_, and int load_(char *err, size_t
 * errlen) and const char *reason_(void): dl_library_load() and
 * dl_library_unavailable_reason() of the library soname_, for feature_,
 * whose functions are symbols_ (an array of DlSymbol).
 */
#define DL_LIBRARY_DEFINE(type_, table_, soname_, feature_, symbols_, load_, reason_) \
        type_ table_;                                                                 \
        static DlLibrary table_##_library = {                                         \
            .soname = soname_,                                                        \
            .feature = feature_,                                                      \
            .symbols = symbols_,                                                      \
            .n_symbols = sizeof(symbols_) / sizeof((symbols_)[0]),                    \
            .table = &table_,                                                         \
            .table_size = sizeof(table_),                                             \
        };                                                                            \
        int load_(char *err, size_t errlen)                                           \
        {                                                                             \
                return dl_library_load(&table_##_library, err, errlen);               \
        }                                                                             \
        const char *reason_(void)                                                     \
        {                                                                             \
                return dl_library_unavailable_reason(&table_##_library);              \
        }
