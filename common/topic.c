/* topic.c - building and parsing edgefleet's MQTT topic names. */
#include "common/topic.h"
#include "common/ef_error.h"

#include <stdio.h>
#include <string.h>

static const char *const device_leaves[] = {"desired", "cmd", "reported", "telemetry", "status",
                                            NULL};

static bool leaf_valid(const char *leaf)
{
    for (const char *const *l = device_leaves; *l; l++)
        if (strcmp(*l, leaf) == 0)
            return true;
    return false;
}

bool ef_device_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > EF_DEVICE_ID_MAX || id[0] == '.' || id[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool ef_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

int ef_topic_device(char *buf, size_t size, const char *device_id, const char *leaf)
{
    if (!ef_device_id_valid(device_id) || !leaf || !leaf_valid(leaf))
        return EF_EINVAL;
    int n = snprintf(buf, size, EF_TOPIC_ROOT "/devices/%s/%s", device_id, leaf);
    return n > 0 && (size_t)n < size ? 0 : EF_ETOOBIG;
}

int ef_topic_event(char *buf, size_t size, const char *kind)
{
    if (!ef_name_valid(kind))
        return EF_EINVAL;
    int n = snprintf(buf, size, EF_TOPIC_ROOT "/events/%s", kind);
    return n > 0 && (size_t)n < size ? 0 : EF_ETOOBIG;
}

int ef_topic_parse_device(const char *topic, char *id, const char **leaf)
{
    static const char prefix[] = EF_TOPIC_ROOT "/devices/";
    if (!topic || strncmp(topic, prefix, sizeof(prefix) - 1) != 0)
        return EF_EINVAL;
    const char *start = topic + sizeof(prefix) - 1;
    const char *slash = strchr(start, '/');
    if (!slash || (size_t)(slash - start) > EF_DEVICE_ID_MAX)
        return EF_EINVAL;
    memcpy(id, start, (size_t)(slash - start));
    id[slash - start] = '\0';
    if (!ef_device_id_valid(id) || !leaf_valid(slash + 1))
        return EF_EINVAL;
    *leaf = slash + 1;
    return 0;
}
