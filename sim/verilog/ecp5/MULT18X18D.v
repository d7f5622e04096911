// MULT18X18D: behavioural simulation model of the Lattice ECP5 sysDSP 18 x 18 multiplier, for
// simulating the netlists Yosys's synth_ecp5 writes (Yosys's ECP5 library has no model of it).
//
// Written from Lattice's documentation:
//   FPGA-TN-02205 "ECP5 and ECP5-5G sysDSP Usage Guide" (formerly TN1267), sections "sysDSP
//     Element Architecture" / "MULT18X18D" and its port and attribute tables: operands A[17:0],
//     B[17:0] (C[17:0] only passes to ROC), SIGNEDA/SIGNEDB (1: two's complement operand,
//     0: unsigned), SOURCEA/SOURCEB (0: the A/B pins, 1: the shift-in chains SRIA/SRIB), product
//     P[35:0] with SIGNEDP, four clocks CLK0..3, clock enables CE0..3 and resets RST0..3, and for
//     each register (input A, input B, input C, pipeline, output) the attributes REG_*_CLK
//     ("NONE" = bypassed, or CLK0..CLK3), REG_*_CE (CE0..CE3) and REG_*_RST (RST0..RST3);
//     RESETMODE SYNC/ASYNC; registered operand outputs ROA/ROB/ROC and shift outputs SROA/SROB;
//   FPGA-DS-02012 "ECP5 and ECP5-5G Family Data Sheet", section "sysDSP Slice" ("one clock is
//     selected for each input register, pipeline register and output register; CE and RST are
//     selected from their four sources at each of them"; signed operands sign-extended to 18 bits,
//     unsigned ones zero-filled).
//
// Modelled: P = A * B, exact, each operand taken as signed or unsigned per its SIGNED pin, through
// the input registers (which also register SIGNEDA/SIGNEDB), the pipeline register and the
// output register, each present when its REG_*_CLK is not "NONE" and loading at the rising edge of
// its clock when its CE is high. A register's reset clears it: RESETMODE "SYNC" at its clock
// edge, with priority over the clock enable; "ASYNC" at once. With every register bypassed the
// multiplier is combinational (as synth_ecp5 maps a plain `*`). Registers start at zero.
// GSR, CLKn_DIV, CAS_MATCH_REG and the timing of the HIGHSPEED clock are not modelled; other
// SOURCEB_MODE, MULT_BYPASS or HIGHSPEED_CLK values stop the simulation with a message.
`timescale 1ns / 1ps
module MULT18X18D (
    input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
    input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
    input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0,
    input SRIA17, SRIA16, SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7,
          SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1, SRIA0,
    input SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9, SRIB8, SRIB7,
          SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0,
    output SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9, SROA8, SROA7,
           SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0,
    output SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7,
           SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0,
    output ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9, ROA8, ROA7, ROA6, ROA5,
           ROA4, ROA3, ROA2, ROA1, ROA0,
    output ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5,
           ROB4, ROB3, ROB2, ROB1, ROB0,
    output ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5,
           ROC4, ROC3, ROC2, ROC1, ROC0,
    output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
           P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0,
    output SIGNEDP
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";

    localparam ASYNC = RESETMODE == "ASYNC";

    // "CLKn" / "CEn" / "RSTn" -> n; -1 for "NONE", -2 for anything else
    function integer which(input [8*4:1] name);
        which = name == "NONE" ? -1 :
                (name == "CLK0" || name == "CE0" || name == "RST0") ? 0 :
                (name == "CLK1" || name == "CE1" || name == "RST1") ? 1 :
                (name == "CLK2" || name == "CE2" || name == "RST2") ? 2 :
                (name == "CLK3" || name == "CE3" || name == "RST3") ? 3 : -2;
    endfunction

    initial begin
        if (which(REG_INPUTA_CLK) == -2 || which(REG_INPUTB_CLK) == -2
                || which(REG_INPUTC_CLK) == -2 || which(REG_PIPELINE_CLK) == -2
                || which(REG_OUTPUT_CLK) == -2 || which(REG_INPUTA_CE) < 0
                || which(REG_INPUTB_CE) < 0 || which(REG_INPUTC_CE) < 0
                || which(REG_PIPELINE_CE) < 0 || which(REG_OUTPUT_CE) < 0
                || which(REG_INPUTA_RST) < 0 || which(REG_INPUTB_RST) < 0
                || which(REG_INPUTC_RST) < 0 || which(REG_PIPELINE_RST) < 0
                || which(REG_OUTPUT_RST) < 0) begin
            $display("MULT18X18D model %m: unsupported REG_*_CLK/CE/RST value");
            $finish;
        end
        if (SOURCEB_MODE != "B_SHIFT" || MULT_BYPASS != "DISABLED" || HIGHSPEED_CLK != "NONE"
                || (RESETMODE != "SYNC" && RESETMODE != "ASYNC")) begin
            $display("MULT18X18D model %m: unsupported SOURCEB_MODE=%0s MULT_BYPASS=%0s HIGHSPEED_CLK=%0s RESETMODE=%0s",
                     SOURCEB_MODE, MULT_BYPASS, HIGHSPEED_CLK, RESETMODE);
            $finish;
        end
    end

    wire [3:0] clks = {CLK3, CLK2, CLK1, CLK0};
    wire [3:0] ces = {CE3, CE2, CE1, CE0};
    wire [3:0] rsts = {RST3, RST2, RST1, RST0};

    wire [17:0] a_pins = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b_pins = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    wire [17:0] c_pins = {C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0};
    wire [17:0] sria = {SRIA17, SRIA16, SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9,
                        SRIA8, SRIA7, SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1, SRIA0};
    wire [17:0] srib = {SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9,
                        SRIB8, SRIB7, SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0};

    // operand and its signedness, into and out of the input registers
    wire [18:0] a_in = {SIGNEDA, SOURCEA ? sria : a_pins};
    wire [18:0] b_in = {SIGNEDB, SOURCEB ? srib : b_pins};
    wire [18:0] a_q, b_q;
    wire [17:0] c_q;
    MULT18X18D_register #(19, which(REG_INPUTA_CLK), ASYNC) reg_a (
        clks[which(REG_INPUTA_CLK) & 3], ces[which(REG_INPUTA_CE)], rsts[which(REG_INPUTA_RST)], a_in, a_q);
    MULT18X18D_register #(19, which(REG_INPUTB_CLK), ASYNC) reg_b (
        clks[which(REG_INPUTB_CLK) & 3], ces[which(REG_INPUTB_CE)], rsts[which(REG_INPUTB_RST)], b_in, b_q);
    MULT18X18D_register #(18, which(REG_INPUTC_CLK), ASYNC) reg_c (
        clks[which(REG_INPUTC_CLK) & 3], ces[which(REG_INPUTC_CE)], rsts[which(REG_INPUTC_RST)], c_pins, c_q);

    // the exact product of the operands as their SIGNED bits say
    wire signed [18:0] a_s = {a_q[18] & a_q[17], a_q[17:0]};     // 19-bit two's complement
    wire signed [18:0] b_s = {b_q[18] & b_q[17], b_q[17:0]};
    wire signed [37:0] product = a_s * b_s;
    wire [36:0] mult = {a_q[18] | b_q[18], product[35:0]};     // SIGNEDP, P

    wire [36:0] pipe_q, out_q;
    MULT18X18D_register #(37, which(REG_PIPELINE_CLK), ASYNC) reg_pipe (
        clks[which(REG_PIPELINE_CLK) & 3], ces[which(REG_PIPELINE_CE)], rsts[which(REG_PIPELINE_RST)], mult, pipe_q);
    MULT18X18D_register #(37, which(REG_OUTPUT_CLK), ASYNC) reg_out (
        clks[which(REG_OUTPUT_CLK) & 3], ces[which(REG_OUTPUT_CE)], rsts[which(REG_OUTPUT_RST)], pipe_q, out_q);

    assign {SIGNEDP, P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21,
            P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2,
            P1, P0} = out_q;
    assign {ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9, ROA8, ROA7, ROA6, ROA5,
            ROA4, ROA3, ROA2, ROA1, ROA0} = a_q[17:0];
    assign {ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5,
            ROB4, ROB3, ROB2, ROB1, ROB0} = b_q[17:0];
    assign {ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5,
            ROC4, ROC3, ROC2, ROC1, ROC0} = c_q;
    assign {SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9, SROA8, SROA7,
            SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0} = a_q[17:0];
    assign {SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7,
            SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0} = b_q[17:0];
endmodule

// One of MULT18X18D's registers: bypassed (CLK_SEL < 0, "NONE") or loading at the rising clock
// edge when CE is high; RST clears it, synchronously with priority over CE, or asynchronously.
module MULT18X18D_register #(parameter WIDTH = 1, parameter CLK_SEL = -1, parameter ASYNC = 0) (
    input clk, input ce, input rst, input [WIDTH-1:0] d, output [WIDTH-1:0] q
);
    reg [WIDTH-1:0] r = {WIDTH{1'b0}};
    generate
        if (CLK_SEL >= 0 && ASYNC) begin : async_reset
            always @(posedge clk or posedge rst)
                if (rst) r <= {WIDTH{1'b0}};
                else if (ce) r <= d;
        end else if (CLK_SEL >= 0) begin : sync_reset
            always @(posedge clk)
                if (rst) r <= {WIDTH{1'b0}};
                else if (ce) r <= d;
        end
    endgenerate
    assign q = CLK_SEL >= 0 ? r : d;
endmodule
