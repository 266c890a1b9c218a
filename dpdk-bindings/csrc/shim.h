/*
 * rvs shim: out-of-line wrappers for DPDK's `static inline` functions and per-lcore variables,
 * which bindgen cannot link to. Every function is a one-line forwarder; see shim.c.
 */
#ifndef RVS_SHIM_H
#define RVS_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

/*
 * Where the rte_mbuf fields the Rust side reads directly live, as constants. Their offsets are
 * the same from DPDK 22.11 to 24.11, but 24.03 wrapped them in anonymous unions (in place of
 * zero-size markers), which bindgen names differently from one version to the next; an offset
 * reads the same on every version. shim.c checks the field sizes the Rust side assumes.
 */
#ifdef RVS_SHIM_OFFSETS
#include <stddef.h>
#include <rte_mbuf_core.h>
enum rvs_mbuf_field {
	RVS_MBUF_BUF_ADDR = offsetof(struct rte_mbuf, buf_addr),
	RVS_MBUF_DATA_OFF = offsetof(struct rte_mbuf, data_off),
	RVS_MBUF_NB_SEGS = offsetof(struct rte_mbuf, nb_segs),
	RVS_MBUF_PORT = offsetof(struct rte_mbuf, port),
	RVS_MBUF_OL_FLAGS = offsetof(struct rte_mbuf, ol_flags),
	RVS_MBUF_PKT_LEN = offsetof(struct rte_mbuf, pkt_len),
	RVS_MBUF_DATA_LEN = offsetof(struct rte_mbuf, data_len),
	RVS_MBUF_BUF_LEN = offsetof(struct rte_mbuf, buf_len),
	RVS_MBUF_NEXT = offsetof(struct rte_mbuf, next),
};
#endif

int rvs_errno(void);
/* Link state without waiting; rte_eth_link became a union in DPDK 24.x. 0 or a negative errno. */
int rvs_eth_link_nowait(uint16_t port_id, uint32_t *speed_mbps, int *up);
unsigned rvs_lcore_id(void);
uint64_t rvs_rdtsc(void);

uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
			  uint16_t nb_pkts);
uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
			  uint16_t nb_pkts);

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void rvs_pktmbuf_free(struct rte_mbuf *m);
void rvs_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count);
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m);
uint32_t rvs_pktmbuf_rss_hash(const struct rte_mbuf *m);
struct rte_mempool *rvs_pktmbuf_pool(const struct rte_mbuf *m);

unsigned rvs_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned rvs_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned rvs_ring_count(const struct rte_ring *r);
unsigned rvs_ring_capacity(const struct rte_ring *r);

uint32_t rvs_softrss(const uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key);

#endif
