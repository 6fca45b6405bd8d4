//! pwru-rs kernel programs.
//!
//! One module per hook kind; `skb` reads an `sk_buff` with offsets userspace took from the running
//! kernel's BTF (Rust eBPF cannot emit CO-RE relocations), applies the meta filters and writes the
//! event.
#![no_std]
#![no_main]

mod filter;
mod kprobe;
mod skb;
mod tracepoint;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Required for the GPL-only helpers (`bpf_probe_read_kernel`, ring buffer).
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
