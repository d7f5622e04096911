// uart_tcp: the simulated board's UART pins bridged to one TCP client on 127.0.0.1 (the job
// LiteX's serial2tcp module does for its simulator), so the host driver runs unchanged over
// socket://127.0.0.1:PORT (docs/deploy.md, "The simulated board").
//
// The harness clocks the Verilated board top and, at the bit level:
//   - drives the design's rx pin: every byte the client sends becomes a UART frame (start bit,
//     8 data bits LSB first, stop bit), each bit held DIVISOR clock cycles;
//   - samples the design's tx pin: a falling edge starts a frame, each bit is sampled in the
//     middle of its DIVISOR cycles, a good stop bit hands the byte to the client (a bad one is
//     counted as a framing error and reported on stderr).
// No byte is lost in either direction: the client's bytes wait in the harness (as they would
// in the USB bridge's buffer) and leave at the line rate.
//
// Compile-time names (the Python side passes them with -D): PIN_CLK, PIN_RST, PIN_RX, PIN_TX,
// optionally PIN_BUSY (an output that is high while the design computes). The Verilated class
// is Vboard (--prefix Vboard).
//
// Run-time options (all bounded, so the process never outlives its use):
//   +port=N            TCP port on 127.0.0.1 (0: any free port); the first line on stdout is
//                      "uart_tcp: listening on 127.0.0.1:PORT"
//   +divisor=D         clock cycles per bit (D >= 4)
//   +accept-timeout=S  exit (status 3) when no client has connected after S seconds
//   +idle-timeout=S    exit (status 3) after S seconds without a byte in either direction
//                      while the design is not busy (PIN_BUSY low, when it is given)
//   +reset-cycles=N    cycles of reset before the client is accepted (default 16)
// It serves one client and exits (status 0) when that client disconnects; it also exits when
// its parent process dies (Linux PR_SET_PDEATHSIG) and on SIGTERM/SIGINT.
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "Vboard.h"
#include "verilated.h"

#ifndef PIN_CLK
#define PIN_CLK clk
#endif
#ifndef PIN_RST
#define PIN_RST rst
#endif
#ifndef PIN_RX
#define PIN_RX rx
#endif
#ifndef PIN_TX
#define PIN_TX tx
#endif

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int) { stop_requested = 1; }

static double now_seconds() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long plusarg(int argc, char **argv, const char *name, long fallback) {
    std::string prefix = std::string("+") + name + "=";
    for (int i = 1; i < argc; ++i)
        if (strncmp(argv[i], prefix.c_str(), prefix.size()) == 0)
            return strtol(argv[i] + prefix.size(), nullptr, 10);
    return fallback;
}

static int die(const char *what) {
    fprintf(stderr, "uart_tcp: %s: %s\n", what, strerror(errno));
    return 2;
}

// The host -> design direction: bytes queued from the socket, shifted out on rx.
struct RxDriver {
    std::deque<uint8_t> queue;
    long divisor;
    uint16_t frame = 0;   // remaining bits, LSB next
    int bits_left = 0;
    long hold = 0;        // cycles left on the current bit
    int level = 1;        // the line idles high

    bool busy() const { return bits_left > 0 || !queue.empty(); }

    // the rx level for the next clock cycle
    int next() {
        if (hold == 0) {
            if (bits_left == 0 && !queue.empty()) {
                frame = static_cast<uint16_t>((1u << 9) | (queue.front() << 1));   // stop, data, start
                queue.pop_front();
                bits_left = 10;
            }
            if (bits_left > 0) {
                level = frame & 1;
                frame >>= 1;
                --bits_left;
                hold = divisor;
            } else {
                level = 1;
            }
        }
        if (hold > 0)
            --hold;
        return level;
    }
};

// The design -> host direction: tx sampled in the middle of each bit.
struct TxSampler {
    long divisor;
    int bit = -1;         // -1 idle, 0 start, 1..8 data, 9 stop
    long countdown = 0;
    uint8_t byte = 0;
    int previous = 1;
    long framing_errors = 0;

    bool busy() const { return bit >= 0; }

    // one sample per clock cycle; returns a byte (0..255) when a frame ends well, else -1
    int sample(int level) {
        int out = -1;
        if (bit < 0) {
            if (previous == 1 && level == 0) {      // falling edge: a start bit begins
                bit = 0;
                countdown = divisor / 2;            // to the middle of the start bit
            }
        } else if (--countdown <= 0) {
            if (bit == 0) {
                if (level != 0) bit = -2;           // a glitch, not a start bit
            } else if (bit <= 8) {
                byte = static_cast<uint8_t>((byte >> 1) | (level << 7));
            } else {
                if (level == 1) out = byte;
                else ++framing_errors;
                bit = -2;
            }
            ++bit;
            countdown = divisor;
        }
        previous = level;
        return out;
    }
};

int main(int argc, char **argv) {
    const long port = plusarg(argc, argv, "port", 0);
    const long divisor = plusarg(argc, argv, "divisor", 16);
    const double accept_timeout = plusarg(argc, argv, "accept-timeout", 60);
    const double idle_timeout = plusarg(argc, argv, "idle-timeout", 60);
    const long reset_cycles = plusarg(argc, argv, "reset-cycles", 16);
    if (divisor < 4 || port < 0 || port > 65535 || accept_timeout <= 0 || idle_timeout <= 0) {
        fprintf(stderr, "uart_tcp: +divisor must be >= 4, +port in 0..65535, timeouts > 0\n");
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);     // never outlive the driver or `python -m deploy sim`
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    // listen on the loopback interface only
    int server = socket(AF_INET, SOCK_STREAM, 0);
    if (server < 0) return die("socket");
    int one = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (bind(server, reinterpret_cast<sockaddr *>(&addr), sizeof addr) < 0) return die("bind");
    if (listen(server, 1) < 0) return die("listen");
    socklen_t len = sizeof addr;
    getsockname(server, reinterpret_cast<sockaddr *>(&addr), &len);
    printf("uart_tcp: listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    // the design: reset, then idle lines, while the client connects
    Verilated::commandArgs(argc, argv);
    Vboard *top = new Vboard;
    top->PIN_RX = 1;
    top->PIN_RST = 1;
    for (long i = 0; i < 2 * reset_cycles; ++i) {
        top->PIN_CLK = i & 1;
        top->eval();
    }
    top->PIN_RST = 0;

    pollfd waiting{server, POLLIN, 0};
    int ready = 0;
    double deadline = now_seconds() + accept_timeout;
    while (!stop_requested && ready == 0 && now_seconds() < deadline)
        ready = poll(&waiting, 1, 100);
    if (ready <= 0) {
        fprintf(stderr, "uart_tcp: no client connected within %.0f s\n", accept_timeout);
        delete top;
        return stop_requested ? 0 : 3;
    }
    int client = accept(server, nullptr, nullptr);
    close(server);                        // one client per process
    if (client < 0) return die("accept");
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK);

    RxDriver rx;
    rx.divisor = divisor;
    TxSampler tx;
    tx.divisor = divisor;
    std::string outgoing;
    uint8_t buffer[4096];
    double last_activity = now_seconds();
    uint64_t cycles = 0;
    int status = 0;
    bool connected = true;
    const uint64_t poll_every = 64;       // cycles between socket polls (a byte takes 10 D)
    while (connected && !stop_requested) {
        // one clock cycle: inputs before the rising edge, tx sampled after it
        top->PIN_CLK = 0;
        top->PIN_RX = rx.next();
        top->eval();
        top->PIN_CLK = 1;
        top->eval();
        int byte = tx.sample(top->PIN_TX & 1);
        if (byte >= 0) outgoing.push_back(static_cast<char>(byte));
        ++cycles;
        if (cycles % poll_every != 0) continue;

        // the socket: send what the design sent, take what the client sent
        bool moved = false;
        if (!outgoing.empty()) {
            ssize_t n = send(client, outgoing.data(), outgoing.size(), 0);
            if (n > 0) {
                outgoing.erase(0, n);
                moved = true;
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                connected = false;
            }
        }
        if (rx.queue.size() < sizeof buffer) {
            ssize_t n = recv(client, buffer, sizeof buffer, 0);
            if (n > 0) {
                rx.queue.insert(rx.queue.end(), buffer, buffer + n);
                moved = true;
            } else if (n == 0) {
                connected = false;        // the driver disconnected: done
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                connected = false;
            }
        }
        double now = (moved || cycles % 65536 == 0) ? now_seconds() : 0;
        if (moved) {
            last_activity = now;
            continue;
        }
        if (cycles % 65536 != 0) continue;
#ifdef PIN_BUSY
        if (top->PIN_BUSY & 1) last_activity = now;   // computing (a long batch) is not idle
#endif
        if (now - last_activity > idle_timeout) {
            fprintf(stderr, "uart_tcp: no byte in either direction for %.0f s: stopping\n",
                    idle_timeout);
            status = 3;
            break;
        }
        // nothing on the line for a while and (when the design says so) nothing computing:
        // wait for the client instead of spinning the clock
        bool quiet = !rx.busy() && !tx.busy() && outgoing.empty() && now - last_activity > 0.5;
#ifdef PIN_BUSY
        quiet = quiet && !(top->PIN_BUSY & 1);
#endif
        if (quiet) {
            pollfd p{client, POLLIN, 0};
            poll(&p, 1, 20);
        }
    }
    if (tx.framing_errors)
        fprintf(stderr, "uart_tcp: %ld framing errors on tx\n", tx.framing_errors);
    top->final();
    delete top;
    close(client);
    return status;
}
