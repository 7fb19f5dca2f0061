/* output.c - tables, key: value lines and re-indented JSON for the CLI. */
#include "server/cli/output.h"
#include "common/ef_error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A growable string. */
struct sbuf {
    char *data;  /* owned, NUL-terminated when len > 0 */
    size_t len;  /* bytes used, without the NUL */
    size_t cap;  /* bytes allocated */
    bool failed; /* an allocation failed; data is incomplete */
};

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sbuf_puts(struct sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

/* Returns the finished string (owned by the caller) or NULL on failure. */
static char *sbuf_finish(struct sbuf *b)
{
    if (!b->failed && !b->data)
        sbuf_add(b, "", 0);
    if (b->failed) {
        free(b->data);
        return NULL;
    }
    return b->data;
}

/* Appends a server string with control characters replaced by '?'. */
static void sbuf_printable(struct sbuf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        char c = ((unsigned char)*p < 0x20 || *p == 0x7f) ? '?' : *p;
        sbuf_add(b, &c, 1);
    }
}

static bool is_scalar(const json_t *v)
{
    return !json_is_object(v) && !json_is_array(v);
}

static void sbuf_value(struct sbuf *b, const json_t *v)
{
    char num[64];
    const char *key;
    json_t *member;
    size_t i;
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING:
        sbuf_printable(b, json_string_value(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sbuf_puts(b, num);
        break;
    case JSON_REAL:
        snprintf(num, sizeof(num), "%g", json_real_value(v));
        sbuf_puts(b, num);
        break;
    case JSON_TRUE:
        sbuf_puts(b, "true");
        break;
    case JSON_FALSE:
        sbuf_puts(b, "false");
        break;
    case JSON_NULL:
        sbuf_puts(b, "-");
        break;
    case JSON_OBJECT:
        if (json_object_size(v) == 0) {
            sbuf_puts(b, "-");
            break;
        }
        i = 0;
        json_object_foreach((json_t *)v, key, member)
        {
            if (i++ > 0)
                sbuf_puts(b, ",");
            sbuf_printable(b, key);
            sbuf_puts(b, "=");
            if (is_scalar(member))
                sbuf_value(b, member);
            else
                sbuf_puts(b, "...");
        }
        break;
    case JSON_ARRAY:
        if (json_array_size(v) == 0) {
            sbuf_puts(b, "-");
            break;
        }
        json_array_foreach(v, i, member)
        {
            if (!is_scalar(member)) {
                snprintf(num, sizeof(num), "(%zu entries)", json_array_size(v));
                sbuf_puts(b, num);
                return;
            }
        }
        json_array_foreach(v, i, member)
        {
            if (i > 0)
                sbuf_puts(b, ", ");
            sbuf_value(b, member);
        }
        break;
    }
}

char *output_scalar(const json_t *value)
{
    struct sbuf b = {0};
    sbuf_value(&b, value);
    return sbuf_finish(&b);
}

char *output_name_version(const char *name, const json_t *version)
{
    char *text = NULL, *cell = NULL;
    if (name && (text = output_scalar(version))) {
        size_t n = strlen(name) + strlen(text) + 2;
        if ((cell = malloc(n)))
            snprintf(cell, n, "%s@%s", name, text);
    }
    free(text);
    return cell;
}

const json_t *output_lookup(const json_t *obj, const char *path)
{
    const json_t *cur = obj;
    const char *p = path;
    char key[128];
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        cur = json_object_get(cur, key);
        p += n + (dot ? 1 : 0);
    }
    return cur;
}

static void indent(FILE *f, int depth)
{
    fputc('\n', f);
    for (int i = 0; i < depth; i++)
        fputs("  ", f);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int output_json_text(FILE *f, const char *text, size_t len)
{
    int depth = 0;
    bool in_string = false, escaped = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            fputc(c, f);
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (is_blank(c))
            continue;
        switch (c) {
        case '"':
            in_string = true;
            fputc(c, f);
            break;
        case '{':
        case '[': {
            size_t j = i + 1;
            while (j < len && is_blank(text[j]))
                j++;
            if (j < len && (text[j] == '}' || text[j] == ']')) {
                /* An empty container stays on one line. */
                fputc(c, f);
                fputc(text[j], f);
                i = j;
                break;
            }
            fputc(c, f);
            indent(f, ++depth);
            break;
        }
        case '}':
        case ']':
            indent(f, --depth);
            fputc(c, f);
            break;
        case ',':
            fputc(c, f);
            indent(f, depth);
            break;
        case ':':
            fputs(": ", f);
            break;
        default:
            fputc(c, f);
        }
    }
    fputc('\n', f);
    return ferror(f) ? EF_EIO : 0;
}

int output_json_value(FILE *f, const json_t *value)
{
    if (json_dumpf(value, f, JSON_INDENT(2) | JSON_ENCODE_ANY) != 0)
        return EF_EIO;
    fputc('\n', f);
    return ferror(f) ? EF_EIO : 0;
}

int output_table(FILE *f, const json_t *rows, const struct output_col *cols, size_t ncols)
{
    size_t nrows = json_array_size(rows);
    char **cells = NULL;
    size_t *widths = NULL;
    int rc = 0;
    if (!json_is_array(rows))
        return EF_EINVAL;
    cells = calloc((nrows + 1) * ncols, sizeof(*cells));
    widths = calloc(ncols, sizeof(*widths));
    if (!cells || !widths) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t c = 0; c < ncols; c++)
        widths[c] = strlen(cols[c].header);
    for (size_t r = 0; r < nrows; r++) {
        const json_t *row = json_array_get(rows, r);
        for (size_t c = 0; c < ncols; c++) {
            char **cell = &cells[r * ncols + c];
            *cell = cols[c].format ? cols[c].format(row)
                                   : output_scalar(output_lookup(row, cols[c].path));
            if (!*cell && !(*cell = strdup("-"))) {
                rc = EF_ENOMEM;
                goto out;
            }
            size_t w = strlen(*cell);
            widths[c] = w > widths[c] ? w : widths[c];
        }
    }
    for (size_t c = 0; c < ncols; c++)
        fprintf(f, "%-*s%s", c + 1 < ncols ? (int)widths[c] : 0, cols[c].header,
                c + 1 < ncols ? "  " : "\n");
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++)
            fprintf(f, "%-*s%s", c + 1 < ncols ? (int)widths[c] : 0, cells[r * ncols + c],
                    c + 1 < ncols ? "  " : "\n");
    if (ferror(f))
        rc = EF_EIO;
out:
    for (size_t i = 0; cells && i < nrows * ncols; i++)
        free(cells[i]);
    free(cells);
    free(widths);
    return rc;
}

/* key: value pairs collected before printing, to align them. */
struct field_list {
    char **keys;   /* owned */
    char **values; /* owned */
    size_t n;
    size_t cap;
};

static int field_add(struct field_list *l, char *key, char *value)
{
    if (!key || !value)
        goto fail;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **k = realloc(l->keys, cap * sizeof(*k));
        if (!k)
            goto fail;
        l->keys = k;
        char **v = realloc(l->values, cap * sizeof(*v));
        if (!v)
            goto fail;
        l->values = v;
        l->cap = cap;
    }
    l->keys[l->n] = key;
    l->values[l->n++] = value;
    return 0;
fail:
    free(key);
    free(value);
    return EF_ENOMEM;
}

static int collect_fields(struct field_list *l, const json_t *obj, const char *prefix)
{
    const char *key;
    json_t *value;
    int rc = 0;
    json_object_foreach((json_t *)obj, key, value)
    {
        struct sbuf name = {0};
        if (prefix) {
            sbuf_puts(&name, prefix);
            sbuf_puts(&name, ".");
        }
        sbuf_printable(&name, key);
        char *full = sbuf_finish(&name);
        if (json_is_object(value) && json_object_size(value) > 0) {
            rc = full ? collect_fields(l, value, full) : EF_ENOMEM;
            free(full);
        } else {
            rc = field_add(l, full, output_scalar(value));
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

int output_fields(FILE *f, const json_t *obj)
{
    struct field_list l = {0};
    size_t width = 0;
    int rc = collect_fields(&l, obj, NULL);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < l.n; i++) {
        size_t w = strlen(l.keys[i]) + 1;
        width = w > width ? w : width;
    }
    for (size_t i = 0; i < l.n; i++)
        fprintf(f, "%s:%*s %s\n", l.keys[i], (int)(width - strlen(l.keys[i]) - 1), "", l.values[i]);
    if (ferror(f))
        rc = EF_EIO;
out:
    for (size_t i = 0; i < l.n; i++) {
        free(l.keys[i]);
        free(l.values[i]);
    }
    free(l.keys);
    free(l.values);
    return rc;
}
