// tb_mult18x18d: the MULT18X18D model (MULT18X18D.v) in isolation against the behaviour its
// header cites from FPGA-TN-02205 and FPGA-DS-02012: exact signed/unsigned 18 x 18 products,
// the register stages (input, pipeline, output) each adding one clock of latency, the output
// register on CLK0 with CE0/RST0 as rtl/pipeline.py instantiates it, clock/CE/RST selection,
// synchronous and asynchronous reset, and the combinational (all registers bypassed) form.
// Inputs change on the falling edge, outputs are checked 1 ns after a rising edge.
//   iverilog -g2005 -I sim/verilog/ecp5 -o tb.vvp sim/verilog/ecp5/tb_mult18x18d.v sim/verilog/ecp5/MULT18X18D.v && vvp tb.vvp
// Ends with "tb_mult18x18d: N passed, M failed".
`timescale 1ns / 1ps

module mult18_vec #(
    parameter REG_INPUTA_CLK = "NONE", REG_INPUTB_CLK = "NONE", REG_PIPELINE_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "NONE", REG_OUTPUT_CE = "CE0", REG_OUTPUT_RST = "RST0",
    parameter RESETMODE = "SYNC"
) (
    input [17:0] a, input [17:0] b, input signeda, signedb,
    input [3:0] clk, input [3:0] ce, input [3:0] rst,
    output [35:0] p, output signedp, output [17:0] roa
);
    MULT18X18D #(.REG_INPUTA_CLK(REG_INPUTA_CLK), .REG_INPUTB_CLK(REG_INPUTB_CLK),
                 .REG_PIPELINE_CLK(REG_PIPELINE_CLK), .REG_OUTPUT_CLK(REG_OUTPUT_CLK),
                 .REG_OUTPUT_CE(REG_OUTPUT_CE), .REG_OUTPUT_RST(REG_OUTPUT_RST),
                 .RESETMODE(RESETMODE), .GSR("DISABLED")) dsp (
        .A17(a[17]), .A16(a[16]), .A15(a[15]), .A14(a[14]), .A13(a[13]), .A12(a[12]), .A11(a[11]),
        .A10(a[10]), .A9(a[9]), .A8(a[8]), .A7(a[7]), .A6(a[6]), .A5(a[5]), .A4(a[4]), .A3(a[3]),
        .A2(a[2]), .A1(a[1]), .A0(a[0]),
        .B17(b[17]), .B16(b[16]), .B15(b[15]), .B14(b[14]), .B13(b[13]), .B12(b[12]), .B11(b[11]),
        .B10(b[10]), .B9(b[9]), .B8(b[8]), .B7(b[7]), .B6(b[6]), .B5(b[5]), .B4(b[4]), .B3(b[3]),
        .B2(b[2]), .B1(b[1]), .B0(b[0]),
        .C17(1'b0), .C16(1'b0), .C15(1'b0), .C14(1'b0), .C13(1'b0), .C12(1'b0), .C11(1'b0),
        .C10(1'b0), .C9(1'b0), .C8(1'b0), .C7(1'b0), .C6(1'b0), .C5(1'b0), .C4(1'b0), .C3(1'b0),
        .C2(1'b0), .C1(1'b0), .C0(1'b0),
        .SIGNEDA(signeda), .SIGNEDB(signedb), .SOURCEA(1'b0), .SOURCEB(1'b0),
        .CLK3(clk[3]), .CLK2(clk[2]), .CLK1(clk[1]), .CLK0(clk[0]),
        .CE3(ce[3]), .CE2(ce[2]), .CE1(ce[1]), .CE0(ce[0]),
        .RST3(rst[3]), .RST2(rst[2]), .RST1(rst[1]), .RST0(rst[0]),
        .P35(p[35]), .P34(p[34]), .P33(p[33]), .P32(p[32]), .P31(p[31]), .P30(p[30]), .P29(p[29]),
        .P28(p[28]), .P27(p[27]), .P26(p[26]), .P25(p[25]), .P24(p[24]), .P23(p[23]), .P22(p[22]),
        .P21(p[21]), .P20(p[20]), .P19(p[19]), .P18(p[18]), .P17(p[17]), .P16(p[16]), .P15(p[15]),
        .P14(p[14]), .P13(p[13]), .P12(p[12]), .P11(p[11]), .P10(p[10]), .P9(p[9]), .P8(p[8]),
        .P7(p[7]), .P6(p[6]), .P5(p[5]), .P4(p[4]), .P3(p[3]), .P2(p[2]), .P1(p[1]), .P0(p[0]),
        .SIGNEDP(signedp),
        .ROA17(roa[17]), .ROA16(roa[16]), .ROA15(roa[15]), .ROA14(roa[14]), .ROA13(roa[13]),
        .ROA12(roa[12]), .ROA11(roa[11]), .ROA10(roa[10]), .ROA9(roa[9]), .ROA8(roa[8]),
        .ROA7(roa[7]), .ROA6(roa[6]), .ROA5(roa[5]), .ROA4(roa[4]), .ROA3(roa[3]), .ROA2(roa[2]),
        .ROA1(roa[1]), .ROA0(roa[0]));
endmodule

module tb_mult18x18d;
    reg clk = 0, clk1 = 0;
    always #5 clk = ~clk;
    always #10 clk1 = ~clk1;            // a second clock at half the rate (edges at 10, 30, ...)

    localparam TB_NAME = "tb_mult18x18d";
`include "tb_checks.vh"

    // the expected product: operands as integers (sign per flag), multiplied, low 36 bits
    function [35:0] expected(input [17:0] a, input [17:0] b, input sa, input sb);
        reg signed [63:0] x, y, z;
        begin
            x = sa ? {{46{a[17]}}, a} : {46'b0, a};
            y = sb ? {{46{b[17]}}, b} : {46'b0, b};
            z = x * y;
            expected = z[35:0];
        end
    endfunction

    reg [17:0] a = 0, b = 0;
    reg sa = 1, sb = 1;
    reg [3:0] ce = 4'b0001, rst = 4'b0000;
    // the design's configuration: output register only, CLK0, CE0, RST0, SYNC
    wire [35:0] p_out, p_comb, p_three, p_async, p_sel;
    wire s_out, s_comb, s_three, s_async, s_sel;
    wire [17:0] roa_out, roa_comb, roa_three, roa_async, roa_sel;
    mult18_vec #(.REG_OUTPUT_CLK("CLK0")) u_out (a, b, sa, sb, {3'b0, clk}, ce, rst, p_out, s_out, roa_out);
    mult18_vec u_comb (a, b, sa, sb, {3'b0, clk}, ce, rst, p_comb, s_comb, roa_comb);
    mult18_vec #(.REG_INPUTA_CLK("CLK0"), .REG_INPUTB_CLK("CLK0"), .REG_PIPELINE_CLK("CLK0"),
                 .REG_OUTPUT_CLK("CLK0")) u_three (a, b, sa, sb, {3'b0, clk}, ce, rst, p_three, s_three, roa_three);
    mult18_vec #(.REG_OUTPUT_CLK("CLK0"), .RESETMODE("ASYNC")) u_async (
        a, b, sa, sb, {3'b0, clk}, ce, rst, p_async, s_async, roa_async);
    // output register on CLK1 with CE2 and RST3
    mult18_vec #(.REG_OUTPUT_CLK("CLK1"), .REG_OUTPUT_CE("CE2"), .REG_OUTPUT_RST("RST3")) u_sel (
        a, b, sa, sb, {2'b0, clk1, clk}, ce, rst, p_sel, s_sel, roa_sel);

    integer k, seed;
    reg [17:0] a_hist [0:3];
    reg [17:0] b_hist [0:3];
    reg [35:0] want;
    initial begin
        seed = 7;
        #1 check("registered outputs start at zero", p_out, 36'h0);
        // corners and random operands, every signedness; the output register shows the product
        // of the operands before the edge, the combinational form at once
        for (k = 0; k < 400; k = k + 1) begin
            fall;
            case (k)
                0: begin a = 18'h20000; b = 18'h20000; end     // -2^17 * -2^17 (signed)
                1: begin a = 18'h20000; b = 18'h1ffff; end
                2: begin a = 18'h3ffff; b = 18'h3ffff; end
                3: begin a = 18'h1ffff; b = 18'h1ffff; end
                default: begin a = $random(seed); b = $random(seed); end
            endcase
            {sa, sb} = k < 200 ? 2'b11 : k[1:0];
            #1 check("combinational product", p_comb, expected(a, b, sa, sb));
            check("combinational SIGNEDP", s_comb, sa | sb);
            tick;
            check("output register: product one edge later", p_out, expected(a, b, sa, sb));
            check("output register: SIGNEDP", s_out, sa | sb);
        end
        // output register timing: not before the edge
        fall; a = 18'd3; b = 18'd5; {sa, sb} = 2'b11;
        tick;
        fall; a = 18'd7;
        @(posedge clk); check("before the edge: the old product", p_out, 36'd15);
        #1 check("after the edge: the new product", p_out, 36'd35);
        // input + pipeline + output registers: three edges of latency (ROA after one)
        for (k = 0; k < 12; k = k + 1) begin
            fall;
            a_hist[k % 4] = $random(seed);
            b_hist[k % 4] = $random(seed);
            a = a_hist[k % 4];
            b = b_hist[k % 4];
            tick;
            check("input register: ROA after one edge", roa_three, a);
            if (k >= 2)
                check("three registers: product three edges later", p_three,
                      expected(a_hist[(k - 2) % 4], b_hist[(k - 2) % 4], 1'b1, 1'b1));
        end
        // CE0 low holds the output register
        fall; a = 18'd11; b = 18'd13; ce[0] = 0;
        want = p_out;
        tick; tick; check("CE0 low: output register holds", p_out, want);
        // synchronous reset: at the edge, with priority over CE (CE0 still low)
        fall; rst[0] = 1;
        @(posedge clk); check("SYNC reset: not before the edge", p_out, want);
        #1 check("SYNC reset with CE0 low: cleared", p_out, 36'h0);
        fall; rst[0] = 0; ce[0] = 1;
        tick; check("after reset: loads again", p_out, 36'd143);
        // asynchronous reset: at once, between edges
        #2 rst[0] = 1;
        #1 check("ASYNC reset: cleared at once", p_async, 36'h0);
        check("ASYNC reset: the SYNC instance keeps its product", p_out, 36'd143);
        #1 rst[0] = 0;
        tick; check("ASYNC: loads again after release", p_async, 36'd143);
        // clock/CE/RST selection: CLK1 (half rate) with CE2; CE0 and RST0 do not matter
        fall; a = 18'd100; b = 18'd3; ce = 4'b0100; rst = 4'b0001;
        @(posedge clk1); #1 check("CLK1/CE2: loads on CLK1", p_sel, 36'd300);
        a = 18'd9;
        @(posedge clk); #1 check("CLK1/CE2: a CLK0 edge does not load it", p_sel, 36'd300);
        @(posedge clk1); #1 check("CLK1/CE2: the next CLK1 edge does", p_sel, 36'd27);
        a = 18'd7;
        ce = 4'b0000;
        @(posedge clk1); #1 check("CLK1/CE2 low: holds", p_sel, 36'd27);
        rst = 4'b1000;
        @(posedge clk1); #1 check("RST3 clears it", p_sel, 36'd0);
        rst = 4'b0000; ce = 4'b0001;

        finish_checks;
    end
endmodule
