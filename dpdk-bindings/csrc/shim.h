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

int rvs_errno(void);
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
