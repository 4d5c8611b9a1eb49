/*
 * The FreeBSD headers that define what src/platform/freebsd/abi.rs states,
 * for the header check (scripts/freebsd-abi.sh).
 */
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/sockio.h>
#include <sys/time.h>
#include <stddef.h>
#include <net/if.h>
#include <net/if_dl.h>
#include <net/if_media.h>
#include <net/if_types.h>
#include <net/route.h>
#include <net/bpf.h>
/* if_lagg.h uses ETHER_ADDR_LEN without including it. */
#include <net/ethernet.h>
#include <net/if_lagg.h>
