/*
 * LD_PRELOAD shim for the SFU benchmark: wraps getifaddrs(3) and clears
 * IFF_LOOPBACK on every interface it returns.
 *
 * Janus 1.1.2 skips loopback interfaces when it gathers ICE candidates, so
 * on its own it cannot talk to peers that only have 127.0.0.1. With this
 * shim preloaded (and ice_enforce_list = "lo"), Janus offers a host
 * candidate on 127.0.0.1 and nothing else.
 *
 * Build: gcc -shared -fPIC -O2 -o getifaddrs_lo.so getifaddrs_lo.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stddef.h>

typedef int (*getifaddrs_fn)(struct ifaddrs **);

int getifaddrs(struct ifaddrs **ifap)
{
	static getifaddrs_fn next_getifaddrs = NULL;
	if (next_getifaddrs == NULL) {
		next_getifaddrs = (getifaddrs_fn)dlsym(RTLD_NEXT, "getifaddrs");
		if (next_getifaddrs == NULL) {
			errno = ENOSYS;
			return -1;
		}
	}
	int result = next_getifaddrs(ifap);
	if (result != 0)
		return result;
	for (struct ifaddrs *entry = *ifap; entry != NULL; entry = entry->ifa_next)
		entry->ifa_flags &= ~(unsigned int)IFF_LOOPBACK;
	return 0;
}
