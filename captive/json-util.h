/* SPDX-License-Identifier: MIT */
/* Cleanup helpers for json-c objects, shared by the parsers of this folder. */
#pragma once

#include <json-c/json.h>

static inline void json_object_putp(json_object **o)
{
        if (*o)
                (void) json_object_put(*o);
}

static inline void json_tokener_freep(json_tokener **t)
{
        if (*t)
                json_tokener_free(*t);
}
