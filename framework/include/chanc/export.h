/* CHANC_API marks what chanc's libraries export; everything else is
 * compiled with -fvisibility=hidden. */
#ifndef CHANC_EXPORT_H
#define CHANC_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define CHANC_API __attribute__((visibility("default")))
#else
#define CHANC_API
#endif

#endif
