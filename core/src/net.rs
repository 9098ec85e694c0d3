//! Listening sockets, bound the same way by every front.

/// The listen backlog: room for a storm of connects (10,000 SSE
/// subscribers at once) while the accept loop catches up. The kernel caps
/// it at `net.core.somaxconn`.
pub const BACKLOG: u32 = 16_384;

/// Binds `addr` for listening, with `SO_REUSEADDR` and [`BACKLOG`].
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}
