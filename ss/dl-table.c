/* SPDX-License-Identifier: MIT */
/*
 * Libraries loaded on first use: see dl-table.h. One lock for all of them: a
 * load happens a few times per process, and every later call only reads the
 * kept outcome.
 */
#include "dl-table.h"

#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* A resolved symbol goes into its typed member as the bytes of a data pointer (POSIX dlsym). */
static_assert(sizeof(void (*)(void)) == sizeof(void *), "function pointers are data pointers");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void load_fail(DlLibrary *lib, void *handle, const char *reason)
{
        if (reason)
                snprintf(lib->error, sizeof(lib->error), "%s unavailable: %s", lib->feature,
                         reason);
        else
                snprintf(lib->error, sizeof(lib->error), "%s unavailable: %s: unknown error",
                         lib->feature, lib->soname);
        if (handle)
                (void) dlclose(handle);
        memset(lib->table, 0, lib->table_size);
        lib->result = -ELIBACC;
}

static void load(DlLibrary *lib)
{
        void *handle;

        handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
                load_fail(lib, NULL, dlerror());
                return;
        }
        for (size_t i = 0; i < lib->n_symbols; i++) {
                const DlSymbol *sym = &lib->symbols[i];
                void *p;

                assert(sym->offset + sizeof(p) <= lib->table_size);
                (void) dlerror();
                p = dlsym(handle, sym->name);
                if (!p) {
                        load_fail(lib, handle, dlerror());
                        return;
                }
                memcpy((char *) lib->table + sym->offset, &p, sizeof(p));
        }
        lib->result = 0;
}

int dl_library_load(DlLibrary *lib, char *err, size_t errlen)
{
        int r;

        assert(lib);
        (void) pthread_mutex_lock(&lock);
        if (!lib->decided) {
                load(lib);
                lib->decided = true;
        }
        r = lib->result;
        if (r < 0 && err && errlen > 0)
                snprintf(err, errlen, "%s", lib->error);
        (void) pthread_mutex_unlock(&lock);
        return r;
}

const char *dl_library_unavailable_reason(DlLibrary *lib)
{
        bool failed;

        assert(lib);
        (void) pthread_mutex_lock(&lock);
        failed = lib->decided && lib->result < 0;
        (void) pthread_mutex_unlock(&lock);
        return failed ? lib->error : NULL;
}
