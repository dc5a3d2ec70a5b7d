/* SPDX-License-Identifier: MIT */
/*
 * Secure Streams states to probe outcomes (see probe-ss.h).
 */
#include <assert.h>

#include "probe-ss.h"

static ProbeFailure failure_from_unreachable_ack(uint32_t ack)
{
        /* Most specific first: a TLS timeout is a timeout, a DNS failure is DNS. */
        if (ack & SS_ACK_CONFIG)
                return PROBE_FAILURE_LOCAL;
        if (ack & SS_ACK_DNS)
                return PROBE_FAILURE_DNS;
        if (ack & SS_ACK_TIMEOUT)
                return PROBE_FAILURE_TIMEOUT;
        if (ack & SS_ACK_TLS)
                return PROBE_FAILURE_TLS;
        if (ack & SS_ACK_RESET)
                return PROBE_FAILURE_RESET;
        return PROBE_FAILURE_REFUSED;
}

static bool failure(ProbeFailure f, ProbeOutcome *ret)
{
        *ret = (ProbeOutcome){.kind = PROBE_OUTCOME_FAILURE, .failure = f};
        return true;
}

bool probe_outcome_from_ss_state(SsState state, uint32_t ack, ProbeOutcome *ret)
{
        assert(ret);

        switch (state) {
        case SS_STATE_QOS_ACK_REMOTE:
        case SS_STATE_QOS_NACK_REMOTE:
                if (ack < 100 || ack > 999)
                        return failure(PROBE_FAILURE_RESET, ret); /* no status: no answer */
                *ret = (ProbeOutcome){.kind = PROBE_OUTCOME_HTTP, .status = (uint16_t) ack};
                return true;
        case SS_STATE_UNREACHABLE:
                return failure(failure_from_unreachable_ack(ack), ret);
        case SS_STATE_TIMEOUT:
                return failure(PROBE_FAILURE_TIMEOUT, ret);
        case SS_STATE_DISCONNECTED:
                return failure(PROBE_FAILURE_RESET, ret);
        case SS_STATE_ALL_RETRIES_FAILED:
                return failure(PROBE_FAILURE_REFUSED, ret);
        case SS_STATE_AUTH_FAILED:
                return failure(PROBE_FAILURE_TLS, ret);
        case SS_STATE_CREATING:
        case SS_STATE_CONNECTED:
        case SS_STATE_CONNECTING:
        case SS_STATE_DESTROYING:
        case SS_STATE_POLL:
        case SS_STATE_QOS_ACK_LOCAL:
        case SS_STATE_QOS_NACK_LOCAL:
        case SS_STATE_SERVER_TXN:
        case SS_STATE_SERVER_UPGRADE:
        case SS_STATE_EVENT_WAIT_CANCELLED:
        case SS_STATE_UPSTREAM_LINK_RETRY:
        case _SS_STATE_MAX:
        case SS_STATE_USER_BASE:
                return false;
        }
        return false; /* user states (http_resp_map values) */
}
