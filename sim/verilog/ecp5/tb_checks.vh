// tb_checks.vh: what tb_dp16kd.v and tb_mult18x18d.v share, included inside the testbench
// module (which declares `reg clk`): a pass/fail count with check(), the clock-edge helpers,
// and the closing line "<TB_NAME>: N passed, M failed" from finish_checks.
    integer passed = 0, failed = 0;
    task check(input [8*48:1] what, input [35:0] got, input [35:0] want);
        if (got === want) passed = passed + 1;
        else begin
            failed = failed + 1;
            $display("%0s: FAIL %0s: got %h, want %h", TB_NAME, what, got, want);
        end
    endtask

    // a rising edge, then 1 ns for the outputs to settle
    task tick;
        begin
            @(posedge clk);
            #1;
        end
    endtask

    // inputs change on the falling edge
    task fall;
        @(negedge clk);
    endtask

    task finish_checks;
        begin
            $display("%0s: %0d passed, %0d failed", TB_NAME, passed, failed);
            $finish;
        end
    endtask
