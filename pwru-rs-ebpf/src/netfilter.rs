//! `--output-netfilter`: fexit on `nft_do_chain(struct nft_pktinfo *pkt, void *priv)`, run once
//! per nftables base chain a packet goes through (iptables-nft's too), with the chain's verdict
//! as its return value. The event is the packet's, filtered and tracked like any other; its
//! netfilter section names the table and chain.

use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
    EbpfContext,
};
use pwru_rs_common::{assert_contract_name, contract, record::HOOK_NFT_DO_CHAIN};

use crate::skb::{handle_skb, Hit, NfChain};

/// The packet enters a base chain: traced as at any hook, and when it is, kept for the exit.
#[fentry]
pub fn pwru_fentry_nft(ctx: FEntryContext) -> u32 {
    let pkt: u64 = ctx.arg(0);
    let chain: u64 = ctx.arg(1);
    let (skb, state) = crate::skb::nft_pktinfo(pkt);
    handle_skb(Hit {
        ctx: ctx.as_ptr(),
        skb,
        // One hook: its kind names it.
        hook_kind: HOOK_NFT_DO_CHAIN,
        hook: || 0,
        caller: || 0,
        reason: || None,
        verdict: None,
        stack_key: || 0,
        given: None,
        netfilter: NfChain {
            chain,
            state,
            entry: true,
        },
        bpf_map: false,
    });
    0
}
assert_contract_name!(pwru_fentry_nft, contract::FENTRY_NFT_DO_CHAIN);

/// The chain's verdict, for a packet traced at its entry.
#[fexit]
pub fn pwru_fexit_nft(ctx: FExitContext) -> u32 {
    // The skb's address only: a drop may have freed it.
    let (skb, _) = crate::skb::nft_pktinfo(ctx.arg(0));
    // The return value follows the two arguments.
    let verdict: u64 = ctx.arg(2);
    crate::skb::nft_exit(skb, verdict as u32);
    0
}
assert_contract_name!(pwru_fexit_nft, contract::FEXIT_NFT_DO_CHAIN);
