//! In the static build (`cargo xtask dist`, `-C target-feature=+crt-static`): Debian's
//! `libpcap.a` has a D-Bus capture module, whose libdbus needs libsystemd, of which there is no
//! static library. pwru-rs only compiles filters (`pcap_open_dead` + `pcap_compile`) and never
//! captures, so it defines the module's two entry points that libpcap's device table refers to
//! itself: the module is then not linked, nor anything it needs. They find no D-Bus devices.

use std::ffi::{c_char, c_int, c_void};

/// `int dbus_findalldevs(pcap_if_list_t *, char *errbuf)`: no devices, no error.
#[unsafe(no_mangle)]
pub extern "C" fn dbus_findalldevs(_devices: *mut c_void, _errbuf: *mut c_char) -> c_int {
    0
}

/// `pcap_t *dbus_create(const char *device, char *errbuf, int *is_ours)`: never ours.
///
/// # Safety
/// `is_ours` is null or points at an int, as libpcap passes it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dbus_create(
    _device: *const c_char,
    _errbuf: *mut c_char,
    is_ours: *mut c_int,
) -> *mut c_void {
    if !is_ours.is_null() {
        // SAFETY: libpcap's pointer to its int.
        unsafe { *is_ours = 0 };
    }
    std::ptr::null_mut()
}
