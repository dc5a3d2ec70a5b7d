/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the policy parser: the input is one source added on top of the
 * builtin policy. A valid result must print, parse back and print the same.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(policy_freep) Policy *p = policy_new(), *again = policy_new();
        PolicyErrors errors = {};
        _cleanup_free_ char *text = NULL, *text2 = NULL;
        int r;

        assert(p && again);
        r = policy_add_builtin(p, NULL);
        assert(r == 0);
        r = policy_add_buffer(p, "fuzz", data, size, &errors);
        assert(r == 0 ? errors.n_messages == 0 : errors.n_messages > 0 || r == -ENOMEM);
        policy_errors_clear(&errors);
        if (r < 0)
                return 0;

        r = policy_print_json(p, true, &text);
        assert(r == 0);
        free(text);
        text = NULL;
        r = policy_print_json(p, false, &text);
        assert(r == 0);
        r = policy_add_buffer(again, "normal", text, strlen(text), NULL);
        assert(r == 0);
        r = policy_print_json(again, false, &text2);
        assert(r == 0);
        assert(strcmp(text, text2) == 0);
        for (size_t i = 0; i < policy_n_streamtypes(p); i++) {
                const PolicyStreamtype *st = policy_streamtype_at(p, i);

                assert(
                    policy_streamtype_equal(p, st, again, policy_find_streamtype(again, st->name)));
        }
        return 0;
}
