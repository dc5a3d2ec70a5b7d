/* SPDX-License-Identifier: MIT */
/*
 * _lws_smd message header and class names (see message.h).
 */
#include "message.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "frame.h"
#include "util.h"

int message_header_parse(const uint8_t *data, size_t len, MessageHeader *ret)
{
        if (len < MESSAGE_HEADER_SIZE)
                return -EBADMSG;
        ret->classes = be64_read(data);
        ret->timestamp_us = be64_read(data + 8);
        return 0;
}

void message_header_write(uint8_t *out, uint64_t classes, uint64_t timestamp_us)
{
        be64_write(out, classes);
        be64_write(out + 8, timestamp_us);
}

size_t message_frame_size(size_t size)
{
        return FRAME_PAYLOAD_OVERHEAD + MESSAGE_HEADER_SIZE + size;
}

size_t message_encode_frame(uint8_t *out, uint8_t type, uint64_t classes, uint64_t ts,
                            const void *payload, size_t size)
{
        /* Header and payload go in place: no intermediate copy on the hot path. */
        out[0] = type;
        be16_write(out + 1, (uint16_t) (FRAME_PAYLOAD_PREFIX + MESSAGE_HEADER_SIZE + size));
        be32_write(out + 3, FRAME_FLAG_SOM | FRAME_FLAG_EOM);
        be32_write(out + 7, 0);
        be64_write(out + 11, ts);
        message_header_write(out + FRAME_PAYLOAD_OVERHEAD, classes, ts);
        if (size)
                memcpy(out + FRAME_PAYLOAD_OVERHEAD + MESSAGE_HEADER_SIZE, payload, size);
        return message_frame_size(size);
}

static const struct {
        const char *name;
        uint32_t bit;
} class_names[] = {
    {"interaction", SMD_CLASS_INTERACTION}, {"system_state", SMD_CLASS_SYSTEM_STATE},
    {"network", SMD_CLASS_NETWORK},         {"metrics", SMD_CLASS_METRICS},
    {"user0", SMD_CLASS_USER(0)},           {"user1", SMD_CLASS_USER(1)},
    {"user2", SMD_CLASS_USER(2)},           {"user3", SMD_CLASS_USER(3)},
    {"user4", SMD_CLASS_USER(4)},           {"user5", SMD_CLASS_USER(5)},
    {"user6", SMD_CLASS_USER(6)},           {"user7", SMD_CLASS_USER(7)},
};

const char *class_name(uint32_t bit)
{
        for (size_t i = 0; i < ELEMENTSOF(class_names); i++)
                if (class_names[i].bit == bit)
                        return class_names[i].name;
        return NULL;
}

int class_from_name(const char *name, size_t len, uint32_t *ret)
{
        if (len == 3 && strncmp(name, "all", 3) == 0) {
                *ret = SMD_CLASS_ALL;
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(class_names); i++)
                if (strlen(class_names[i].name) == len &&
                    strncmp(class_names[i].name, name, len) == 0) {
                        *ret = class_names[i].bit;
                        return 0;
                }
        return -EINVAL;
}

int classes_parse(const char *list, uint32_t *ret, const char **ret_bad, size_t *ret_bad_len)
{
        uint32_t mask = 0;
        const char *p = list;

        for (;;) {
                size_t len = strcspn(p, ",");
                uint32_t bit;

                if (class_from_name(p, len, &bit) < 0) {
                        if (ret_bad)
                                *ret_bad = p;
                        if (ret_bad_len)
                                *ret_bad_len = len;
                        return -EINVAL;
                }
                mask |= bit;
                if (p[len] == 0)
                        break;
                p += len + 1;
        }
        *ret = mask;
        return 0;
}

size_t classes_format(uint32_t classes, char *buf, size_t size)
{
        size_t need = 0;

        if (size)
                buf[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(class_names); i++) {
                if (!(classes & class_names[i].bit))
                        continue;
                size_t room = size > need ? size - need : 0;
                int n =
                    room ? snprintf(buf + need, room, "%s%s", need ? "," : "", class_names[i].name)
                         : snprintf(NULL, 0, "%s%s", need ? "," : "", class_names[i].name);
                need += (size_t) n;
        }
        for (unsigned b = 0; b < 32; b++) {
                uint32_t bit = UINT32_C(1) << b;
                if ((classes & bit) && !class_name(bit)) {
                        size_t room = size > need ? size - need : 0;
                        int n = room ? snprintf(buf + need, room, "%s0x%x", need ? "," : "", bit)
                                     : snprintf(NULL, 0, "%s0x%x", need ? "," : "", bit);
                        need += (size_t) n;
                }
        }
        return need;
}
