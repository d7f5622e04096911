// DP16KD: behavioural simulation model of the Lattice ECP5 sysMEM block RAM (EBR) primitive, for
// simulating the netlists Yosys's synth_ecp5 writes (Yosys's own ECP5 library, cells_sim.v, has
// DP16KD only as a black box).
//
// Written from Lattice's documentation:
//   FPGA-TN-02204 "ECP5 and ECP5-5G Memory Usage Guide" (formerly TN1264), section "True
//     Dual-Port RAM (RAM_DP_TRUE) - EBR Based": the primitive's ports (DIA/DIB, ADA/ADB,
//     CLKA/CLKB, CEA/CEB, OCEA/OCEB, WEA/WEB, CSA/CSB[2:0], RSTA/RSTB, DOA/DOB), the data
//     widths (16K x 1, 8K x 2, 4K x 4, 2K x 9, 1K x 18 per port), REGMODE NOREG (read data on the
//     clock edge that registers the address) and OUTREG (one clock later, through the output
//     register clocked with OCE), WRITEMODE NORMAL (the output keeps its value during a write),
//     WRITETHROUGH (the output shows the data written) and READBEFOREWRITE (the output shows the
//     old contents; x9 and x18 only), the chip-select decode CSDECODE, and in the attribute
//     definitions RESETMODE SYNC/ASYNC and ASYNC_RESET_RELEASE;
//   FPGA-DS-02012 "ECP5 and ECP5-5G Family Data Sheet", section "sysMEM Memory" (subsections
//     "Bus Size Matching": word 0's bits LSB to MSB, then word 1's, on every port whatever its
//     width; "Memory Core Reset": RST resets the output latches and registers of its port, not the
//     memory array; inputs are always registered at the array).
//
// Modelled, per port X (A or B), at the rising edge of CLKX (falling with CLKXMUX "INV"):
//   * the operation happens when CEX is high and {CSX2,CSX1,CSX0} equals CSDECODE_X; otherwise
//     nothing is read or written and the output latch keeps its value;
//   * a write (WEX high) stores DIX at the addressed word; in x18 mode ADX1 and ADX0 are the byte
//     enables of DIX[17:9] and DIX[8:0] (the word address is ADX[13:4]); x9 uses ADX[13:3],
//     x4 ADX[13:2], x2 ADX[13:1], x1 ADX[13:0], and the low data pins;
//   * the output latch takes the word read (no write), or per WRITEMODE during a write;
//   * OUTREG: the output register takes the latch's previous value when OCEX is high, so the
//     data of an address registered at edge n appears after edge n+1 (NOREG: after edge n);
//   * RSTX clears the port's latch and output register (not the memory): RESETMODE "SYNC" at a
//     clock edge, whatever CEX and OCEX are (reset has priority, as Yosys's memory library also
//     assumes: "rdsrst zero ungated"); "ASYNC" at once, the outputs held at zero while RSTX is
//     high and until the next value is loaded after it;
//   * narrow widths lay 4-bit words into the 9-bit halves of an 18-bit row without the ninth
//     (parity) bit: nibble k of row r is bits {r, 9*(k/2) + 4*(k%2) +: 4}; 2- and 1-bit words
//     subdivide nibbles the same way (the layout Yosys's memory mapper assumes for this primitive);
//   * INITVAL_00..3F give the initial contents: 16 rows of 18 bits each, row i in bits
//     [20*i +: 18] (20-bit slots), INITVAL_nn holding rows 16*nn .. 16*nn+15;
//   * same-edge collisions between the two ports (one writes bits the other reads or writes) give
//     X in the read data or the memory bits: the documentation guarantees no result for them.
// The latches and output registers start at zero (as after configuration). GSR is not modelled.
// Anything else (a *MUX parameter other than the pin itself or CLK "INV", READBEFOREWRITE on a
// narrow port, an unknown width or mode) stops the simulation with a message naming it.
`timescale 1ns / 1ps
module DP16KD (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5,
          DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA,
    input CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
           DOA4, DOA3, DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5,
          DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB,
    input CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
           DOB4, DOB3, DOB2, DOB1, DOB0
);
    parameter DATA_WIDTH_A = 18;
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter CLKAMUX = "CLKA";
    parameter CLKBMUX = "CLKB";
    parameter CEAMUX = "CEA";
    parameter CEBMUX = "CEB";
    parameter OCEAMUX = "OCEA";
    parameter OCEBMUX = "OCEB";
    parameter WEAMUX = "WEA";
    parameter WEBMUX = "WEB";
    parameter RSTAMUX = "RSTA";
    parameter RSTBMUX = "RSTB";
    parameter GSR = "ENABLED";
    parameter WID = 0;
    parameter INIT_DATA = "STATIC";
    parameter INITVAL_00 = 320'h0;
    parameter INITVAL_01 = 320'h0;
    parameter INITVAL_02 = 320'h0;
    parameter INITVAL_03 = 320'h0;
    parameter INITVAL_04 = 320'h0;
    parameter INITVAL_05 = 320'h0;
    parameter INITVAL_06 = 320'h0;
    parameter INITVAL_07 = 320'h0;
    parameter INITVAL_08 = 320'h0;
    parameter INITVAL_09 = 320'h0;
    parameter INITVAL_0A = 320'h0;
    parameter INITVAL_0B = 320'h0;
    parameter INITVAL_0C = 320'h0;
    parameter INITVAL_0D = 320'h0;
    parameter INITVAL_0E = 320'h0;
    parameter INITVAL_0F = 320'h0;
    parameter INITVAL_10 = 320'h0;
    parameter INITVAL_11 = 320'h0;
    parameter INITVAL_12 = 320'h0;
    parameter INITVAL_13 = 320'h0;
    parameter INITVAL_14 = 320'h0;
    parameter INITVAL_15 = 320'h0;
    parameter INITVAL_16 = 320'h0;
    parameter INITVAL_17 = 320'h0;
    parameter INITVAL_18 = 320'h0;
    parameter INITVAL_19 = 320'h0;
    parameter INITVAL_1A = 320'h0;
    parameter INITVAL_1B = 320'h0;
    parameter INITVAL_1C = 320'h0;
    parameter INITVAL_1D = 320'h0;
    parameter INITVAL_1E = 320'h0;
    parameter INITVAL_1F = 320'h0;
    parameter INITVAL_20 = 320'h0;
    parameter INITVAL_21 = 320'h0;
    parameter INITVAL_22 = 320'h0;
    parameter INITVAL_23 = 320'h0;
    parameter INITVAL_24 = 320'h0;
    parameter INITVAL_25 = 320'h0;
    parameter INITVAL_26 = 320'h0;
    parameter INITVAL_27 = 320'h0;
    parameter INITVAL_28 = 320'h0;
    parameter INITVAL_29 = 320'h0;
    parameter INITVAL_2A = 320'h0;
    parameter INITVAL_2B = 320'h0;
    parameter INITVAL_2C = 320'h0;
    parameter INITVAL_2D = 320'h0;
    parameter INITVAL_2E = 320'h0;
    parameter INITVAL_2F = 320'h0;
    parameter INITVAL_30 = 320'h0;
    parameter INITVAL_31 = 320'h0;
    parameter INITVAL_32 = 320'h0;
    parameter INITVAL_33 = 320'h0;
    parameter INITVAL_34 = 320'h0;
    parameter INITVAL_35 = 320'h0;
    parameter INITVAL_36 = 320'h0;
    parameter INITVAL_37 = 320'h0;
    parameter INITVAL_38 = 320'h0;
    parameter INITVAL_39 = 320'h0;
    parameter INITVAL_3A = 320'h0;
    parameter INITVAL_3B = 320'h0;
    parameter INITVAL_3C = 320'h0;
    parameter INITVAL_3D = 320'h0;
    parameter INITVAL_3E = 320'h0;
    parameter INITVAL_3F = 320'h0;

    localparam WM_NORMAL = 0, WM_WRITETHROUGH = 1, WM_READBEFOREWRITE = 2, WM_BAD = 3;
    localparam WM_A = WRITEMODE_A == "NORMAL" ? WM_NORMAL : WRITEMODE_A == "WRITETHROUGH" ?
                      WM_WRITETHROUGH : WRITEMODE_A == "READBEFOREWRITE" ? WM_READBEFOREWRITE : WM_BAD;
    localparam WM_B = WRITEMODE_B == "NORMAL" ? WM_NORMAL : WRITEMODE_B == "WRITETHROUGH" ?
                      WM_WRITETHROUGH : WRITEMODE_B == "READBEFOREWRITE" ? WM_READBEFOREWRITE : WM_BAD;
    localparam OUTREG_A = REGMODE_A == "OUTREG";
    localparam OUTREG_B = REGMODE_B == "OUTREG";
    localparam ASYNC = RESETMODE == "ASYNC";

    // ---- the array and its initial contents -------------------------------------------------
    reg [17:0] mem [0:1023];

    task init_rows(input integer block, input [319:0] value);
        integer i;
        for (i = 0; i < 16; i = i + 1) mem[block * 16 + i] = value[20 * i +: 18];
    endtask

    function csdecode(input [8*5:1] text);    // "0bXYZ" -> 3'bXYZ, X on any other text
        integer k;
        begin
            csdecode = 1'b1;
            for (k = 0; k < 3; k = k + 1)
                if (text[8*(3-k) -: 8] != "0" && text[8*(3-k) -: 8] != "1") csdecode = 1'b0;
            if (text[8*5 -: 16] != "0b") csdecode = 1'b0;
        end
    endfunction

    function [2:0] csvalue(input [8*5:1] text);
        integer k;
        for (k = 0; k < 3; k = k + 1) csvalue[2-k] = text[8*(3-k) -: 8] == "1";
    endfunction

    function width_ok(input integer w);
        width_ok = w == 1 || w == 2 || w == 4 || w == 9 || w == 18;
    endfunction

    function supported_mux(input [8*8:1] value, input [8*8:1] pin, input allow_inv);
        supported_mux = value == pin || (allow_inv && value == "INV");
    endfunction

    reg bad_config;
    initial begin
        bad_config = 0;
        if (!width_ok(DATA_WIDTH_A) || !width_ok(DATA_WIDTH_B)) begin
            $display("DP16KD model %m: unsupported DATA_WIDTH_A=%0d / DATA_WIDTH_B=%0d", DATA_WIDTH_A, DATA_WIDTH_B);
            bad_config = 1;
        end
        if (WM_A == WM_BAD || WM_B == WM_BAD) begin
            $display("DP16KD model %m: unsupported WRITEMODE_A=%0s / WRITEMODE_B=%0s", WRITEMODE_A, WRITEMODE_B);
            bad_config = 1;
        end
        if ((WM_A == WM_READBEFOREWRITE && DATA_WIDTH_A < 9) || (WM_B == WM_READBEFOREWRITE && DATA_WIDTH_B < 9)) begin
            $display("DP16KD model %m: READBEFOREWRITE needs a x9 or x18 port (FPGA-TN-02204)");
            bad_config = 1;
        end
        if ((REGMODE_A != "NOREG" && REGMODE_A != "OUTREG") || (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG")) begin
            $display("DP16KD model %m: unsupported REGMODE_A=%0s / REGMODE_B=%0s", REGMODE_A, REGMODE_B);
            bad_config = 1;
        end
        if (RESETMODE != "SYNC" && RESETMODE != "ASYNC") begin
            $display("DP16KD model %m: unsupported RESETMODE=%0s", RESETMODE);
            bad_config = 1;
        end
        if (!csdecode(CSDECODE_A) || !csdecode(CSDECODE_B)) begin
            $display("DP16KD model %m: unsupported CSDECODE_A=%0s / CSDECODE_B=%0s", CSDECODE_A, CSDECODE_B);
            bad_config = 1;
        end
        if (!supported_mux(CLKAMUX, "CLKA", 1) || !supported_mux(CLKBMUX, "CLKB", 1)
                || !supported_mux(CEAMUX, "CEA", 0) || !supported_mux(CEBMUX, "CEB", 0)
                || !supported_mux(OCEAMUX, "OCEA", 0) || !supported_mux(OCEBMUX, "OCEB", 0)
                || !supported_mux(WEAMUX, "WEA", 0) || !supported_mux(WEBMUX, "WEB", 0)
                || !supported_mux(RSTAMUX, "RSTA", 0) || !supported_mux(RSTBMUX, "RSTB", 0)) begin
            $display("DP16KD model %m: unsupported control-pin *MUX parameter");
            bad_config = 1;
        end
        if (bad_config) $finish;
        init_rows(8'h00, INITVAL_00); init_rows(8'h01, INITVAL_01); init_rows(8'h02, INITVAL_02);
        init_rows(8'h03, INITVAL_03); init_rows(8'h04, INITVAL_04); init_rows(8'h05, INITVAL_05);
        init_rows(8'h06, INITVAL_06); init_rows(8'h07, INITVAL_07); init_rows(8'h08, INITVAL_08);
        init_rows(8'h09, INITVAL_09); init_rows(8'h0A, INITVAL_0A); init_rows(8'h0B, INITVAL_0B);
        init_rows(8'h0C, INITVAL_0C); init_rows(8'h0D, INITVAL_0D); init_rows(8'h0E, INITVAL_0E);
        init_rows(8'h0F, INITVAL_0F); init_rows(8'h10, INITVAL_10); init_rows(8'h11, INITVAL_11);
        init_rows(8'h12, INITVAL_12); init_rows(8'h13, INITVAL_13); init_rows(8'h14, INITVAL_14);
        init_rows(8'h15, INITVAL_15); init_rows(8'h16, INITVAL_16); init_rows(8'h17, INITVAL_17);
        init_rows(8'h18, INITVAL_18); init_rows(8'h19, INITVAL_19); init_rows(8'h1A, INITVAL_1A);
        init_rows(8'h1B, INITVAL_1B); init_rows(8'h1C, INITVAL_1C); init_rows(8'h1D, INITVAL_1D);
        init_rows(8'h1E, INITVAL_1E); init_rows(8'h1F, INITVAL_1F); init_rows(8'h20, INITVAL_20);
        init_rows(8'h21, INITVAL_21); init_rows(8'h22, INITVAL_22); init_rows(8'h23, INITVAL_23);
        init_rows(8'h24, INITVAL_24); init_rows(8'h25, INITVAL_25); init_rows(8'h26, INITVAL_26);
        init_rows(8'h27, INITVAL_27); init_rows(8'h28, INITVAL_28); init_rows(8'h29, INITVAL_29);
        init_rows(8'h2A, INITVAL_2A); init_rows(8'h2B, INITVAL_2B); init_rows(8'h2C, INITVAL_2C);
        init_rows(8'h2D, INITVAL_2D); init_rows(8'h2E, INITVAL_2E); init_rows(8'h2F, INITVAL_2F);
        init_rows(8'h30, INITVAL_30); init_rows(8'h31, INITVAL_31); init_rows(8'h32, INITVAL_32);
        init_rows(8'h33, INITVAL_33); init_rows(8'h34, INITVAL_34); init_rows(8'h35, INITVAL_35);
        init_rows(8'h36, INITVAL_36); init_rows(8'h37, INITVAL_37); init_rows(8'h38, INITVAL_38);
        init_rows(8'h39, INITVAL_39); init_rows(8'h3A, INITVAL_3A); init_rows(8'h3B, INITVAL_3B);
        init_rows(8'h3C, INITVAL_3C); init_rows(8'h3D, INITVAL_3D); init_rows(8'h3E, INITVAL_3E);
        init_rows(8'h3F, INITVAL_3F);
    end

    // ---- addressing: a word of `width` bits at `ad` lies in row ad[13:4]; which bits ----------
    function [17:0] mask_of(input integer width, input [13:0] ad);   // bits of the row
        begin
            case (width)
                18: mask_of = {{9{ad[1]}}, {9{ad[0]}}};     // x18: ADX1, ADX0 byte enables
                9: mask_of = 18'h1ff << (9 * ad[3]);
                4: mask_of = 18'hf << (9 * ad[3] + 4 * ad[2]);
                2: mask_of = 18'h3 << (9 * ad[3] + 4 * ad[2] + 2 * ad[1]);
                default: mask_of = 18'h1 << (9 * ad[3] + 4 * ad[2] + 2 * ad[1] + ad[0]);
            endcase
        end
    endfunction

    function [17:0] read_mask(input integer width, input [13:0] ad);  // the word read
        read_mask = width == 18 ? 18'h3ffff : mask_of(width, ad);
    endfunction

    function [17:0] to_row(input integer width, input [13:0] ad, input [17:0] d);  // pins -> row
        case (width)
            18: to_row = d;
            9: to_row = {9'b0, d[8:0]} << (9 * ad[3]);
            4: to_row = {14'b0, d[3:0]} << (9 * ad[3] + 4 * ad[2]);
            2: to_row = {16'b0, d[1:0]} << (9 * ad[3] + 4 * ad[2] + 2 * ad[1]);
            default: to_row = {17'b0, d[0]} << (9 * ad[3] + 4 * ad[2] + 2 * ad[1] + ad[0]);
        endcase
    endfunction

    function [17:0] from_row(input integer width, input [13:0] ad, input [17:0] r);  // row -> pins
        case (width)
            18: from_row = r;
            9: from_row = {9'b0, r[9 * ad[3] +: 9]};
            4: from_row = {14'b0, r[9 * ad[3] + 4 * ad[2] +: 4]};
            2: from_row = {16'b0, r[9 * ad[3] + 4 * ad[2] + 2 * ad[1] +: 2]};
            default: from_row = {17'b0, r[9 * ad[3] + 4 * ad[2] + 2 * ad[1] + ad[0]]};
        endcase
    endfunction

    // ---- the two ports -----------------------------------------------------------------------
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7,
                       DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
                       DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2,
                       ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2,
                       ADB1, ADB0};
    wire clka = CLKAMUX == "INV" ? ~CLKA : CLKA;
    wire clkb = CLKBMUX == "INV" ? ~CLKB : CLKB;
    wire sela = {CSA2, CSA1, CSA0} == csvalue(CSDECODE_A);
    wire selb = {CSB2, CSB1, CSB0} == csvalue(CSDECODE_B);

    // per port p (0: A, 1: B): output latch (the NOREG output) and output register (OUTREG);
    // asynchronous reset: RST's rising edges counted, and the count the port last saw;
    // same-edge collisions: what the port did at its last edge, how many words its latch has
    // loaded, and which load of its latch the other port made unknown
    reg [17:0] latch [0:1];
    reg [17:0] oreg [0:1];
    reg [31:0] arst [0:1];
    reg [31:0] arst_seen [0:1];
    reg [63:0] last_time [0:1];
    reg [9:0] last_row [0:1];
    reg [17:0] last_wmask [0:1];
    reg [17:0] last_rmask [0:1];
    reg [31:0] loads [0:1];
    reg [31:0] hit [0:1];
    integer q;
    initial
        for (q = 0; q < 2; q = q + 1) begin
            latch[q] = 18'b0;
            oreg[q] = 18'b0;
            arst[q] = 0;
            arst_seen[q] = 0;
            last_time[q] = 64'hffffffffffffffff;
            last_row[q] = 0;
            last_wmask[q] = 0;
            last_rmask[q] = 0;
            loads[q] = 0;
            hit[q] = 32'hffffffff;
        end
    always @(posedge RSTA) if (ASYNC) arst[0] <= arst[0] + 1;
    always @(posedge RSTB) if (ASYNC) arst[1] <= arst[1] + 1;

    wire [17:0] word_a = hit[0] == loads[0] ? 18'bx : latch[0];
    wire [17:0] word_b = hit[1] == loads[1] ? 18'bx : latch[1];
    wire held_a = ASYNC && (RSTA || arst[0] != arst_seen[0]);
    wire held_b = ASYNC && (RSTB || arst[1] != arst_seen[1]);

    genvar p;
    generate
        for (p = 0; p < 2; p = p + 1) begin : port
            localparam WIDTH = p ? DATA_WIDTH_B : DATA_WIDTH_A;
            localparam WM = p ? WM_B : WM_A;
            localparam OTHER = 1 - p;
            wire clk = p ? clkb : clka;
            wire ce = p ? CEB : CEA;
            wire oce = p ? OCEB : OCEA;
            wire we = p ? WEB : WEA;
            wire rst = p ? RSTB : RSTA;
            wire sel = p ? selb : sela;
            wire held = p ? held_b : held_a;
            wire [13:0] ad = p ? adb : ada;
            wire [17:0] di = p ? dib : dia;
            wire [17:0] current = p ? word_b : word_a;      // the latch as the pins see it

            always @(posedge clk) begin : step
                reg [17:0] old_row, new_row, wm, rm, word;
                reg [9:0] row;
                wm = 18'b0;
                rm = 18'b0;
                word = current;
                row = ad[13:4];
                if (ce && sel) begin
                    old_row = mem[row];
                    if (we) begin
                        wm = mask_of(WIDTH, ad);
                        new_row = (old_row & ~wm) | (to_row(WIDTH, ad, di) & wm);
                        mem[row] = new_row;
                        if (WM == WM_WRITETHROUGH) word = from_row(WIDTH, ad, new_row);
                        else if (WM == WM_READBEFOREWRITE) word = from_row(WIDTH, ad, old_row);
                    end else
                        word = from_row(WIDTH, ad, old_row);
                    if (!we || WM != WM_NORMAL) rm = read_mask(WIDTH, ad);
                    // the other port acted at this instant already: overlapping bits undefined
                    if (last_time[OTHER] == $time && last_row[OTHER] == row) begin
                        if (wm & last_wmask[OTHER])
                            mem[row] = mem[row] ^ ((wm & last_wmask[OTHER]) & 18'bx);
                        if (rm & last_wmask[OTHER]) word = 18'bx;
                        if (wm & last_rmask[OTHER]) hit[OTHER] = loads[OTHER];
                    end
                    loads[p] = loads[p] + 1;
                end
                last_time[p] = $time;
                last_row[p] = row;
                last_wmask[p] = wm;
                last_rmask[p] = rm;
                if (rst) begin
                    latch[p] <= 18'b0;
                    oreg[p] <= 18'b0;
                end else begin
                    if (ce && sel) latch[p] <= word;
                    if (oce) oreg[p] <= held ? 18'b0 : current;
                end
                arst_seen[p] <= arst[p];
            end
        end
    endgenerate

    wire [17:0] doa = held_a ? 18'b0 : OUTREG_A ? oreg[0] : word_a;
    wire [17:0] dob = held_b ? 18'b0 : OUTREG_B ? oreg[1] : word_b;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
            DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
            DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule
