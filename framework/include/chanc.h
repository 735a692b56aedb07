/* chanc: typed-JSON WebSocket consumers on libuv, jansson and friends.
 * Umbrella header over the chanc/ headers. */
#ifndef CHANC_H
#define CHANC_H

#include "chanc/error.h"
#include "chanc/log.h"
#include "chanc/buf.h"
#include "chanc/json.h"
#include "chanc/utf8.h"
#include "chanc/message.h"
#include "chanc/auth.h"
#include "chanc/consumer.h"
#include "chanc/app.h"
#include "chanc/layer.h"
#include "chanc/transport.h"
#include "chanc/ledger.h"
#include "chanc/asyncapi.h"

#define CHANC_VERSION_MAJOR 0
#define CHANC_VERSION_MINOR 1
#define CHANC_VERSION_PATCH 0
#define CHANC_VERSION "0.1.0"

#endif
