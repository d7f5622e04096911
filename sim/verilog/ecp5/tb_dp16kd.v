// tb_dp16kd: the DP16KD model (DP16KD.v) in isolation against the timing and behaviour its
// header cites from FPGA-TN-02204 and FPGA-DS-02012: REGMODE NOREG (data after the edge that
// registers the address) and OUTREG (one edge later, gated by OCE), the three write modes,
// CE, chip-select decode, synchronous and asynchronous reset of the output (not the array),
// byte enables, INITVAL layout, narrow-port bit placement and a same-edge collision.
// Inputs change on the falling edge, outputs are checked 1 ns after a rising edge.
//   iverilog -g2005 -I sim/verilog/ecp5 -o tb.vvp sim/verilog/ecp5/tb_dp16kd.v sim/verilog/ecp5/DP16KD.v && vvp tb.vvp
// Ends with "tb_dp16kd: N passed, M failed".
`timescale 1ns / 1ps

// DP16KD with vector ports (one place for the 100-odd scalar pins)
module dp16kd_vec #(
    parameter DATA_WIDTH_A = 18, DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG", REGMODE_B = "NOREG",
    parameter WRITEMODE_A = "NORMAL", WRITEMODE_B = "NORMAL",
    parameter RESETMODE = "SYNC", CSDECODE_A = "0b000", CSDECODE_B = "0b000",
    parameter [319:0] INITVAL_00 = 320'h0, INITVAL_3F = 320'h0
) (
    input clk,
    input [17:0] dia, input [13:0] ada, input cea, ocea, wea, rsta, input [2:0] csa,
    output [17:0] doa,
    input [17:0] dib, input [13:0] adb, input ceb, oceb, web, rstb, input [2:0] csb,
    output [17:0] dob
);
    DP16KD #(.DATA_WIDTH_A(DATA_WIDTH_A), .DATA_WIDTH_B(DATA_WIDTH_B),
             .REGMODE_A(REGMODE_A), .REGMODE_B(REGMODE_B),
             .WRITEMODE_A(WRITEMODE_A), .WRITEMODE_B(WRITEMODE_B),
             .RESETMODE(RESETMODE), .CSDECODE_A(CSDECODE_A), .CSDECODE_B(CSDECODE_B),
             .GSR("DISABLED"), .INITVAL_00(INITVAL_00), .INITVAL_3F(INITVAL_3F)) ram (
        .DIA17(dia[17]), .DIA16(dia[16]), .DIA15(dia[15]), .DIA14(dia[14]), .DIA13(dia[13]),
        .DIA12(dia[12]), .DIA11(dia[11]), .DIA10(dia[10]), .DIA9(dia[9]), .DIA8(dia[8]),
        .DIA7(dia[7]), .DIA6(dia[6]), .DIA5(dia[5]), .DIA4(dia[4]), .DIA3(dia[3]), .DIA2(dia[2]),
        .DIA1(dia[1]), .DIA0(dia[0]),
        .ADA13(ada[13]), .ADA12(ada[12]), .ADA11(ada[11]), .ADA10(ada[10]), .ADA9(ada[9]),
        .ADA8(ada[8]), .ADA7(ada[7]), .ADA6(ada[6]), .ADA5(ada[5]), .ADA4(ada[4]), .ADA3(ada[3]),
        .ADA2(ada[2]), .ADA1(ada[1]), .ADA0(ada[0]),
        .CEA(cea), .OCEA(ocea), .CLKA(clk), .WEA(wea), .RSTA(rsta),
        .CSA2(csa[2]), .CSA1(csa[1]), .CSA0(csa[0]),
        .DOA17(doa[17]), .DOA16(doa[16]), .DOA15(doa[15]), .DOA14(doa[14]), .DOA13(doa[13]),
        .DOA12(doa[12]), .DOA11(doa[11]), .DOA10(doa[10]), .DOA9(doa[9]), .DOA8(doa[8]),
        .DOA7(doa[7]), .DOA6(doa[6]), .DOA5(doa[5]), .DOA4(doa[4]), .DOA3(doa[3]), .DOA2(doa[2]),
        .DOA1(doa[1]), .DOA0(doa[0]),
        .DIB17(dib[17]), .DIB16(dib[16]), .DIB15(dib[15]), .DIB14(dib[14]), .DIB13(dib[13]),
        .DIB12(dib[12]), .DIB11(dib[11]), .DIB10(dib[10]), .DIB9(dib[9]), .DIB8(dib[8]),
        .DIB7(dib[7]), .DIB6(dib[6]), .DIB5(dib[5]), .DIB4(dib[4]), .DIB3(dib[3]), .DIB2(dib[2]),
        .DIB1(dib[1]), .DIB0(dib[0]),
        .ADB13(adb[13]), .ADB12(adb[12]), .ADB11(adb[11]), .ADB10(adb[10]), .ADB9(adb[9]),
        .ADB8(adb[8]), .ADB7(adb[7]), .ADB6(adb[6]), .ADB5(adb[5]), .ADB4(adb[4]), .ADB3(adb[3]),
        .ADB2(adb[2]), .ADB1(adb[1]), .ADB0(adb[0]),
        .CEB(ceb), .OCEB(oceb), .CLKB(clk), .WEB(web), .RSTB(rstb),
        .CSB2(csb[2]), .CSB1(csb[1]), .CSB0(csb[0]),
        .DOB17(dob[17]), .DOB16(dob[16]), .DOB15(dob[15]), .DOB14(dob[14]), .DOB13(dob[13]),
        .DOB12(dob[12]), .DOB11(dob[11]), .DOB10(dob[10]), .DOB9(dob[9]), .DOB8(dob[8]),
        .DOB7(dob[7]), .DOB6(dob[6]), .DOB5(dob[5]), .DOB4(dob[4]), .DOB3(dob[3]), .DOB2(dob[2]),
        .DOB1(dob[1]), .DOB0(dob[0]));
endmodule

module tb_dp16kd;
    reg clk = 0;
    always #5 clk = ~clk;

    localparam TB_NAME = "tb_dp16kd";
`include "tb_checks.vh"

    function [13:0] a18(input [9:0] word);       // x18 address of a word, both byte enables on
        a18 = {word, 4'b0011};
    endfunction

    // ---- instance 1: A x18 NOREG NORMAL (CSDECODE 0b101); B x18 OUTREG WRITETHROUGH; SYNC ----
    reg [17:0] dia1 = 0, dib1 = 0;
    reg [13:0] ada1 = 0, adb1 = 0;
    reg cea1 = 0, ocea1 = 1, wea1 = 0, rsta1 = 0, ceb1 = 0, oceb1 = 1, web1 = 0, rstb1 = 0;
    reg [2:0] csa1 = 3'b101, csb1 = 3'b000;
    wire [17:0] doa1, dob1;
    dp16kd_vec #(.REGMODE_B("OUTREG"), .WRITEMODE_B("WRITETHROUGH"), .CSDECODE_A("0b101"),
                 .INITVAL_00((320'h2abcd << 300) | 320'h12345), .INITVAL_3F(320'h3fedc << 300)) u1 (
        clk, dia1, ada1, cea1, ocea1, wea1, rsta1, csa1, doa1,
        dib1, adb1, ceb1, oceb1, web1, rstb1, csb1, dob1);

    // ---- instance 2: A x18 OUTREG READBEFOREWRITE; B x9 NOREG READBEFOREWRITE; ASYNC ---------
    reg [17:0] dia2 = 0, dib2 = 0;
    reg [13:0] ada2 = 0, adb2 = 0;
    reg cea2 = 0, ocea2 = 1, wea2 = 0, rsta2 = 0, ceb2 = 0, oceb2 = 1, web2 = 0, rstb2 = 0;
    wire [17:0] doa2, dob2;
    dp16kd_vec #(.DATA_WIDTH_B(9), .REGMODE_A("OUTREG"), .WRITEMODE_A("READBEFOREWRITE"),
                 .WRITEMODE_B("READBEFOREWRITE"), .RESETMODE("ASYNC")) u2 (
        clk, dia2, ada2, cea2, ocea2, wea2, rsta2, 3'b000, doa2,
        dib2, adb2, ceb2, oceb2, web2, rstb2, 3'b000, dob2);

    // ---- instances 3..5: A x18, B x4 / x2 / x1 (NOREG, NORMAL) ------------------------------
    reg [17:0] dia3 = 0, dib3 = 0;
    reg [13:0] ada3 = 0, adb3 = 0;
    reg cea3 = 0, wea3 = 0, ceb3 = 0, web3 = 0;
    wire [17:0] doa3, dob3, doa4, dob4, doa5, dob5;
    dp16kd_vec #(.DATA_WIDTH_B(4)) u3 (clk, dia3, ada3, cea3, 1'b1, wea3, 1'b0, 3'b000, doa3,
                                        dib3, adb3, ceb3, 1'b1, web3, 1'b0, 3'b000, dob3);
    dp16kd_vec #(.DATA_WIDTH_B(2)) u4 (clk, dia3, ada3, cea3, 1'b1, wea3, 1'b0, 3'b000, doa4,
                                        dib3, adb3, ceb3, 1'b1, web3, 1'b0, 3'b000, dob4);
    dp16kd_vec #(.DATA_WIDTH_B(1)) u5 (clk, dia3, ada3, cea3, 1'b1, wea3, 1'b0, 3'b000, doa5,
                                        dib3, adb3, ceb3, 1'b1, web3, 1'b0, 3'b000, dob5);

    integer k;
    reg [17:0] row;
    initial begin
        // ==== instance 1 ==========================================================================
        // INITVAL: row 0 from bits [17:0] of INITVAL_00, row 15 from [317:300], row 1023 from
        // [317:300] of INITVAL_3F (20-bit slots); the outputs start at zero
        #1 check("u1 DOA before any read", doa1, 18'h0);
        fall; cea1 = 1; ada1 = a18(0);
        tick; check("u1 INITVAL_00 row 0", doa1, 18'h12345);
        fall; ada1 = a18(15);
        tick; check("u1 INITVAL_00 row 15", doa1, 18'h2abcd);
        fall; ada1 = a18(1023);
        tick; check("u1 INITVAL_3F row 1023", doa1, 18'h3fedc);
        fall; ada1 = a18(1);
        tick; check("u1 INITVAL_00 row 1 (zero)", doa1, 18'h0);
        // NOREG read timing: the word of the address registered at an edge is on DOA after it,
        // and not before
        fall; ada1 = a18(1023);
        @(posedge clk); check("u1 NOREG: old data just before the edge", doa1, 18'h0);
        #1 check("u1 NOREG: new data after the edge", doa1, 18'h3fedc);
        // NORMAL write: the array takes the data, DOA keeps the last read value
        fall; ada1 = a18(7); dia1 = 18'h15a5a; wea1 = 1;
        tick; check("u1 NORMAL write keeps DOA", doa1, 18'h3fedc);
        fall; wea1 = 0;
        tick; check("u1 read back after NORMAL write", doa1, 18'h15a5a);
        // byte enables (x18: ADA1 -> DIA[17:9], ADA0 -> DIA[8:0])
        fall; ada1 = {10'd7, 4'b0001}; dia1 = 18'h3ffff; wea1 = 1;
        tick;
        fall; ada1 = {10'd7, 4'b0010}; dia1 = 18'h00000;
        tick;
        fall; wea1 = 0; ada1 = a18(7);
        tick; check("u1 byte enables: low byte 1s, high byte 0s", doa1, 18'h001ff);
        fall; ada1 = {10'd7, 4'b0000}; dia1 = 18'h2aaaa; wea1 = 1;
        tick;
        fall; wea1 = 0; ada1 = a18(7);
        tick; check("u1 no byte enable: no write", doa1, 18'h001ff);
        // CE low: nothing read or written, DOA holds
        fall; cea1 = 0; ada1 = a18(15); wea1 = 1; dia1 = 18'h11111;
        tick; check("u1 CE low: DOA holds", doa1, 18'h001ff);
        fall; cea1 = 1; wea1 = 0;
        tick; check("u1 CE low: no write happened", doa1, 18'h2abcd);
        // chip select: CS != CSDECODE_A (0b101) acts as a disabled port
        fall; csa1 = 3'b100; ada1 = a18(0);
        tick; check("u1 CS mismatch: DOA holds", doa1, 18'h2abcd);
        fall; wea1 = 1; dia1 = 18'h3c3c3;
        tick; check("u1 CS mismatch: no write either", doa1, 18'h2abcd);
        fall; csa1 = 3'b101; wea1 = 0;
        tick; check("u1 CS match: read, unchanged by that write", doa1, 18'h12345);
        // synchronous reset: at the edge, whatever CE, output only (array kept)
        fall; rsta1 = 1; cea1 = 0;
        @(posedge clk); check("u1 SYNC reset: not before the edge", doa1, 18'h12345);
        #1 check("u1 SYNC reset with CE low: cleared at the edge", doa1, 18'h0);
        fall; rsta1 = 0; cea1 = 1; ada1 = a18(0);
        tick; check("u1 reset kept the array", doa1, 18'h12345);
        // port B: OUTREG, WRITETHROUGH. A read appears one edge later than NOREG would show it
        fall; ceb1 = 1; adb1 = a18(15);
        tick; check("u1 OUTREG: not yet after the first edge", dob1, 18'h0);
        fall; adb1 = a18(0);
        tick; check("u1 OUTREG: row 15 after the second edge", dob1, 18'h2abcd);
        tick; check("u1 OUTREG: row 0 one edge later", dob1, 18'h12345);
        // OCE low holds the output register while the latch moves on
        fall; oceb1 = 0; adb1 = a18(1023);
        tick; tick; check("u1 OCE low: output register holds", dob1, 18'h12345);
        fall; oceb1 = 1;
        tick; check("u1 OCE high: register takes the latch", dob1, 18'h3fedc);
        // WRITETHROUGH: the data written appears (through the output register, an edge later)
        fall; adb1 = a18(9); dib1 = 18'h0f0f0; web1 = 1;
        tick; check("u1 WRITETHROUGH + OUTREG: previous word", dob1, 18'h3fedc);
        fall; web1 = 0; ceb1 = 0;
        tick; check("u1 WRITETHROUGH: written word appears", dob1, 18'h0f0f0);
        // synchronous reset of the output register
        fall; rstb1 = 1;
        tick; check("u1 SYNC reset clears the output register", dob1, 18'h0);
        fall; rstb1 = 0;
        // same-edge collision: B writes a word A reads at the same edge -> A's data unknown
        fall; ada1 = a18(20); adb1 = a18(20); dib1 = 18'h1; ceb1 = 1; web1 = 1;
        tick; check("u1 collision: A reads what B writes", doa1, 18'bx);
        fall; web1 = 0; ceb1 = 0;
        tick; check("u1 after the collision: the written word", doa1, 18'h1);

        // ==== instance 2 ==========================================================================
        // READBEFOREWRITE + OUTREG on A: the old word, one edge after the write
        fall; cea2 = 1; ada2 = a18(3); dia2 = 18'h2aaaa; wea2 = 1;
        tick; check("u2 OUTREG: nothing yet", doa2, 18'h0);
        fall; dia2 = 18'h15555;
        tick; check("u2 READBEFOREWRITE: old word (0) of the first write", doa2, 18'h0);
        fall; wea2 = 0;
        tick; check("u2 READBEFOREWRITE: old word of the second write", doa2, 18'h2aaaa);
        tick; check("u2 read after the writes", doa2, 18'h15555);
        // x9 port B reads the halves of row 3: word 6 = bits [8:0], word 7 = bits [17:9]
        fall; ceb2 = 1; adb2 = {11'd6, 3'b000};
        tick; check("u2 x9 word 6 = row 3 [8:0]", dob2, {9'h0, 9'h155});
        fall; adb2 = {11'd7, 3'b000};
        tick; check("u2 x9 word 7 = row 3 [17:9]", dob2, {9'h0, 9'h0aa});
        // READBEFOREWRITE on the x9 port
        fall; dib2 = 18'h1ff; web2 = 1;
        tick; check("u2 x9 READBEFOREWRITE: old half", dob2, {9'h0, 9'h0aa});
        fall; web2 = 0;
        tick; check("u2 x9 read back", dob2, {9'h0, 9'h1ff});
        fall; ceb2 = 0; ada2 = a18(3);
        tick; tick; check("u2 x18 sees the x9 write in [17:9]", doa2, {9'h1ff, 9'h155});
        // asynchronous reset: the outputs clear at once, between edges, and stay clear until
        // the next value is loaded (CE low: the latch loads nothing at the next edge)
        fall; cea2 = 0;
        #1 rsta2 = 1; rstb2 = 1;
        #1 check("u2 ASYNC reset clears DOA at once", doa2, 18'h0);
        check("u2 ASYNC reset clears DOB at once", dob2, 18'h0);
        #1 rsta2 = 0; rstb2 = 0;
        #1 check("u2 ASYNC reset: DOA stays clear after release", doa2, 18'h0);
        check("u2 ASYNC reset: DOB stays clear after release", dob2, 18'h0);
        tick; check("u2 ASYNC: OUTREG takes the cleared latch", doa2, 18'h0);
        fall; cea2 = 1;
        tick; tick; check("u2 ASYNC: reads again", doa2, {9'h1ff, 9'h155});

        // ==== instances 3..5: narrow ports (bit placement, parity bits 8 and 17 unused) ==========
        fall; cea3 = 1; wea3 = 1; ada3 = a18(5); dia3 = 18'b1_0110_0111_1_0101_1010;
        tick;
        fall; wea3 = 0; cea3 = 0; ceb3 = 1;
        // x4: nibble k of row 5 at 4-bit address 4*5+k: bits [3:0], [7:4], [12:9], [16:13]
        for (k = 0; k < 4; k = k + 1) begin
            adb3 = {10'd5, k[1:0], 2'b00};
            tick; fall;
            row = dia3;
            check("u3 x4 nibble", dob3, (row >> (9 * (k / 2) + 4 * (k % 2))) & 18'hf);
        end
        for (k = 0; k < 8; k = k + 1) begin
            adb3 = {10'd5, k[2:0], 1'b0};
            tick; fall;
            row = dia3;
            check("u4 x2 pair", dob4, (row >> (9 * (k / 4) + 4 * ((k / 2) % 2) + 2 * (k % 2))) & 18'h3);
        end
        for (k = 0; k < 16; k = k + 1) begin
            adb3 = {10'd5, k[3:0]};
            tick; fall;
            row = dia3;
            check("u5 x1 bit", dob5, (row >> (9 * (k / 8) + 4 * ((k / 4) % 2) + (k % 4))) & 18'h1);
        end
        // a narrow write lands in its bits only
        adb3 = {10'd5, 4'b1100}; dib3 = 18'h0; web3 = 1;      // x4 nibble 3 (bits [16:13]) <- 0
        tick; fall; web3 = 0; ceb3 = 0; cea3 = 1; ada3 = a18(5);
        tick;
        check("u3 x4 write: nibble 3 only", doa3, 18'b1_0000_0111_1_0101_1010);

        finish_checks;
    end
endmodule
