/* UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates, nothing
 * above U+10FFFF. One decoder for the framework (text frames, close
 * reasons, log lines) and for applications (counting characters the way
 * string_too_long does). */
#ifndef CHANC_UTF8_H
#define CHANC_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Decode the code point at s (n bytes available): its length in bytes
 * (1-4), with the code point in *cp (may be NULL); 0 when s does not start
 * with a valid, complete sequence (or n is 0). */
CHANC_API size_t chanc_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Code points in s[0..n), or -1 when it is not valid UTF-8. */
CHANC_API long chanc_utf8_length(const void *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif
