/* The one UTF-8 decoder (chanc/utf8.h). */
#include "chanc/utf8.h"

size_t chanc_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0)
        return 0;
    unsigned char b = s[0];
    size_t len;
    uint32_t c, min;
    if (b < 0x80) {
        if (cp)
            *cp = b;
        return 1;
    }
    if ((b & 0xE0) == 0xC0)
        len = 2, c = b & 0x1F, min = 0x80;
    else if ((b & 0xF0) == 0xE0)
        len = 3, c = b & 0x0F, min = 0x800;
    else if ((b & 0xF8) == 0xF0)
        len = 4, c = b & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    if (cp)
        *cp = c;
    return len;
}

long chanc_utf8_length(const void *text, size_t n) {
    const unsigned char *s = text;
    long count = 0;
    for (size_t i = 0; i < n; count++) {
        size_t len = chanc_utf8_decode(s + i, n - i, NULL);
        if (!len)
            return -1;
        i += len;
    }
    return count;
}
