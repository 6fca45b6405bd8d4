//! pwru-rs kernel programs.
//!
//! One module per hook kind; `skb` reads an `sk_buff` with offsets userspace took from the running
//! kernel's BTF (Rust eBPF cannot emit CO-RE relocations), applies the meta filters and writes the
//! event.
#![no_std]
#![no_main]

/// One program per `name => contract name, skb argument, reason argument` line, all of the hook
/// kind `$attr` (`kprobe`, `raw_tracepoint`) calling `$hit(&ctx, skb_arg, reason_arg)`; each
/// name is checked against the contract userspace attaches by. Textually before the modules that
/// use it.
macro_rules! skb_programs {
    ($attr:ident($ctx:ty) -> $ret:ty = $hit:ident;
     $($name:ident => $contract:expr, $skb:expr, $reason:expr;)*) => {
        $(
            #[$attr]
            // The program is its body: a BPF-to-BPF call per hit would cost on the miss path.
            #[inline(always)]
            pub fn $name(ctx: $ctx) -> $ret {
                $hit(&ctx, $skb, $reason)
            }
            pwru_rs_common::assert_contract_name!($name, $contract);
        )*
    };
}

mod bpfprog;
mod filter;
mod kprobe;
mod netfilter;
mod skb;
mod tracepoint;
mod track;
mod tunnel;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Required for the GPL-only helpers (`bpf_probe_read_kernel`, ring buffer).
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
