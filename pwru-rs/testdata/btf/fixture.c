// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Source of fixture.btf: a miniature "vmlinux" BTF for the unit tests of pwru-rs/src/btf.rs.
 * Regenerate with ./gen.sh (clang -g -target bpf, then the .BTF section is extracted).
 *
 * The layouts mimic the kernel's where it matters to the parser: the fields pwru-rs needs sit in
 * anonymous unions/structs, sk_buff has bitfields (so its BTF struct has kind_flag set),
 * possible_net_t is a typedef of an anonymous struct. The _Static_asserts pin the offsets the
 * Rust tests expect, so the C and the tests cannot drift apart silently.
 */

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef __u16 __be16;
typedef __u32 sk_buff_data_t;

#define OFFSET(type, field, off) _Static_assert(__builtin_offsetof(type, field) == (off), #field)

struct ns_common {
	__u32 ns_type;
	void *stashed;
	unsigned int inum;
};
OFFSET(struct ns_common, inum, 16);

struct net {
	int passive;
	struct ns_common ns;
};
OFFSET(struct net, ns, 8); /* net_inum = 8 + 16 = 24 */

typedef struct {
	struct net *net;
} possible_net_t;

struct sock_common {
	__u32 skc_hash;
	__u16 skc_num;
	possible_net_t skc_net;
};
OFFSET(struct sock_common, skc_net, 8);

struct sock {
	int sk_pad;
	struct sock_common __sk_common;
};
OFFSET(struct sock, __sk_common, 8); /* sk_net = 8 + 8 + 0 = 16 */

struct net_device {
	unsigned long priv_flags;
	struct {
		char name[16];
	};
	unsigned int flags;
	int ifindex;
	unsigned int mtu;
	possible_net_t nd_net;
};
OFFSET(struct net_device, name, 8);
OFFSET(struct net_device, ifindex, 28);
OFFSET(struct net_device, mtu, 32);
OFFSET(struct net_device, nd_net, 40); /* dev_net = 40 + 0 */

struct rb_node {
	unsigned long __rb_parent_color;
	struct rb_node *rb_right;
	struct rb_node *rb_left;
};

struct sk_buff {
	union {
		struct {
			struct sk_buff *next;
			struct sk_buff *prev;
			union {
				struct net_device *dev;
				unsigned long dev_scratch;
			};
		};
		struct rb_node rbnode;
	};
	union {
		struct sock *sk;
		int ip_defrag_offset;
	};
	char cb[48];
	unsigned int len;
	unsigned int data_len;
	__u16 mac_len;
	__u16 hdr_len;
	__u8 cloned : 1, nohdr : 1, pkt_type : 3;
	/* Like the kernel's struct_group(headers, ...): only the anonymous copy is searched. */
	union {
		struct {
			__be16 protocol;
			__u16 transport_header;
			__u16 network_header;
			__u16 mac_header;
		};
		struct {
			__be16 protocol;
			__u16 transport_header;
			__u16 network_header;
			__u16 mac_header;
		} headers;
	};
	union {
		__u32 mark;
		__u32 reserved_tailroom;
	};
	sk_buff_data_t tail;
	sk_buff_data_t end;
	unsigned char *head;
	unsigned char *data;
};
OFFSET(struct sk_buff, dev, 16);
OFFSET(struct sk_buff, sk, 24);
OFFSET(struct sk_buff, len, 80);
OFFSET(struct sk_buff, mac_len, 88);
OFFSET(struct sk_buff, protocol, 94);
OFFSET(struct sk_buff, transport_header, 96);
OFFSET(struct sk_buff, network_header, 98);
OFFSET(struct sk_buff, mac_header, 100);
OFFSET(struct sk_buff, mark, 104);
OFFSET(struct sk_buff, tail, 108);
OFFSET(struct sk_buff, end, 112);
OFFSET(struct sk_buff, head, 120);
OFFSET(struct sk_buff, data, 128);

enum skb_drop_reason {
	SKB_NOT_DROPPED_YET = 0,
	SKB_CONSUMED,
	SKB_DROP_REASON_NOT_SPECIFIED,
	SKB_DROP_REASON_NO_SOCKET,
	SKB_DROP_REASON_PKT_TOO_SMALL,
	SKB_DROP_REASON_MAX,
	SKB_DROP_REASON_SUBSYS_MASK = 0xffff0000,
};

typedef struct sk_buff skb_alias_t;

/* Kernel functions. The comment gives the position pwru-rs must report. */
#define KFUNC __attribute__((noinline))

KFUNC int skb_first(struct sk_buff *skb) { return skb->len; } /* 1 */
KFUNC int skb_third(int a, long b, struct sk_buff *skb) { return a + b + skb->len; } /* 3 */
/* 2: the first skb wins. pwru's counter would say 3 (it does not count params after an skb). */
KFUNC int skb_two(int a, struct sk_buff *first, int b, struct sk_buff *second)
{
	return a + b + first->len + second->len;
}
KFUNC int skb_const(const struct sk_buff *skb) { return skb->len; } /* 1 */
KFUNC int skb_volatile_typedef(int a, volatile skb_alias_t *skb) { return a + skb->len; } /* 2 */
KFUNC int skb_fifth(int a, int b, int c, int d, struct sk_buff *skb) /* 5 */
{
	return a + b + c + d + skb->len;
}
/*
 * skb in position 6: not traceable with kprobes (only 5 args in registers), must not be listed.
 * BPF cannot compile a body for it, hence naked (its params are unnamed in BTF).
 */
__attribute__((naked)) int skb_sixth(int a, int b, int c, int d, int e, struct sk_buff *skb)
{
	asm volatile("r0 = 0\nexit");
}
KFUNC int no_skb(struct sock *sk, struct net_device *dev) { return sk->sk_pad + dev->mtu; }
KFUNC int skb_by_value_is_not_a_pointer(struct sk_buff **pskb) { return (*pskb)->len; }

/* Raw tracepoints: the kernel emits `typedef void (*btf_trace_<name>)(void *__data, TP_PROTO)`. */
typedef void (*btf_trace_kfree_skb)(void *, struct sk_buff *, void *, enum skb_drop_reason,
				    struct sock *);
typedef void (*btf_trace_net_dev_queue)(void *, struct sk_buff *);
typedef void (*btf_trace_skb_late)(void *, int, const struct sk_buff *);
typedef void (*btf_trace_sched_switch)(void *, int); /* no skb: not listed */
typedef void (*not_a_btf_trace)(void *, struct sk_buff *); /* wrong prefix: not listed */

/* Typedefs only reach BTF when used. */
btf_trace_kfree_skb tp_kfree_skb;
btf_trace_net_dev_queue tp_net_dev_queue;
btf_trace_skb_late tp_skb_late;
btf_trace_sched_switch tp_sched_switch;
not_a_btf_trace tp_not_a_btf_trace;
enum skb_drop_reason some_reason;
/* Structs only reached through pointers would be emitted as forward declarations. */
struct net init_net;
