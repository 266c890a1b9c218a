/*
 * rvs shim: out-of-line copies of the DPDK `static inline` fast-path functions used by the
 * dpdk-bindings crate. Kept trivial on purpose: no logic lives here, only forwarding, so the
 * Rust side documents and checks every invariant.
 */
#include <string.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_thash.h>

#define RVS_SHIM_OFFSETS
#include "shim.h"

/* The Rust side reads these fields by offset (shim.h) with these sizes. */
#define RVS_FIELD_SIZE(f, n) \
	_Static_assert(sizeof(((struct rte_mbuf *)0)->f) == (n), "rte_mbuf." #f " is not " #n " bytes")
RVS_FIELD_SIZE(buf_addr, sizeof(void *));
RVS_FIELD_SIZE(data_off, 2);
RVS_FIELD_SIZE(nb_segs, 2);
RVS_FIELD_SIZE(port, 2);
RVS_FIELD_SIZE(ol_flags, 8);
RVS_FIELD_SIZE(pkt_len, 4);
RVS_FIELD_SIZE(data_len, 2);
RVS_FIELD_SIZE(buf_len, 2);
RVS_FIELD_SIZE(next, sizeof(void *));

int rvs_eth_link_nowait(uint16_t port_id, uint32_t *speed_mbps, int *up)
{
	struct rte_eth_link link;
	int ret;

	memset(&link, 0, sizeof(link));
	ret = rte_eth_link_get_nowait(port_id, &link);
	if (ret == 0) {
		*speed_mbps = link.link_speed;
		*up = link.link_status == RTE_ETH_LINK_UP;
	}
	return ret;
}

int rvs_errno(void) { return rte_errno; }
unsigned rvs_lcore_id(void) { return rte_lcore_id(); }
uint64_t rvs_rdtsc(void) { return rte_rdtsc(); }

uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
			  uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
			  uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}
void rvs_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void rvs_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count)
{
	rte_pktmbuf_free_bulk(mbufs, count);
}
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
uint32_t rvs_pktmbuf_rss_hash(const struct rte_mbuf *m) { return m->hash.rss; }
struct rte_mempool *rvs_pktmbuf_pool(const struct rte_mbuf *m) { return m->pool; }

unsigned rvs_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n)
{
	return rte_ring_enqueue_burst(r, objs, n, NULL);
}
unsigned rvs_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n)
{
	return rte_ring_dequeue_burst(r, objs, n, NULL);
}
unsigned rvs_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }
unsigned rvs_ring_capacity(const struct rte_ring *r) { return rte_ring_get_capacity(r); }
uint32_t rvs_softrss(const uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key)
{
	return rte_softrss((uint32_t *)(uintptr_t)input_tuple, input_len, rss_key);
}
